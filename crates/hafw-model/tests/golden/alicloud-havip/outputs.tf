output "eip_addresses" {
  description = "Public address of each EIP, by its name in the deployment file."
  value = {
    "web" = alicloud_eip_address.web.ip_address
  }
}

output "havip_ids" {
  description = "HAVIP ids, by name."
  value = {
    "external" = alicloud_vpc_ha_vip.external.id
    "internal" = alicloud_vpc_ha_vip.internal.id
  }
}

output "instance_ids" {
  description = "Firewall instance ids, by name."
  value = {
    "fw-a" = alicloud_instance.fw-a.id
    "fw-b" = alicloud_instance.fw-b.id
  }
}

output "management_addresses" {
  description = "Where to reach each node's SSH (and API): its management ENI's private\naddress, from inside the VPC (policy.management.allow names no outside source)."
  value = {
    "fw-a" = "10.0.0.11"
    "fw-b" = "10.0.0.12"
  }
}

output "eni_ids" {
  description = "ENI ids, by ENI name (primary ENIs included)."
  value = {
    "fw-a-mgmt"    = data.alicloud_ecs_network_interfaces.fw-a.interfaces[0].id
    "fw-a-untrust" = alicloud_ecs_network_interface.fw-a-untrust.id
    "fw-a-trust"   = alicloud_ecs_network_interface.fw-a-trust.id
    "fw-a-ha2"     = alicloud_ecs_network_interface.fw-a-ha2.id
    "fw-b-mgmt"    = data.alicloud_ecs_network_interfaces.fw-b.interfaces[0].id
    "fw-b-untrust" = alicloud_ecs_network_interface.fw-b-untrust.id
    "fw-b-trust"   = alicloud_ecs_network_interface.fw-b-trust.id
    "fw-b-ha2"     = alicloud_ecs_network_interface.fw-b-ha2.id
  }
}

output "eni_macs" {
  description = "ENI MAC addresses, by ENI name: how a node tells its interfaces apart."
  value = {
    "fw-a-mgmt"    = data.alicloud_ecs_network_interfaces.fw-a.interfaces[0].mac
    "fw-a-untrust" = alicloud_ecs_network_interface.fw-a-untrust.mac
    "fw-a-trust"   = alicloud_ecs_network_interface.fw-a-trust.mac
    "fw-a-ha2"     = alicloud_ecs_network_interface.fw-a-ha2.mac
    "fw-b-mgmt"    = data.alicloud_ecs_network_interfaces.fw-b.interfaces[0].mac
    "fw-b-untrust" = alicloud_ecs_network_interface.fw-b-untrust.mac
    "fw-b-trust"   = alicloud_ecs_network_interface.fw-b-trust.mac
    "fw-b-ha2"     = alicloud_ecs_network_interface.fw-b-ha2.mac
  }
}

output "ha_key_b64" {
  description = "The pair's HA key, base64 (terraform output -raw ha_key_b64 | base64 -d)."
  value       = random_id.ha_key.b64_std
  sensitive   = true
}
