output "eip_addresses" {
  description = "Public address of each EIP, by its name in the deployment file."
  value = {
    "web" = alicloud_eip_address.web.ip_address
  }
}

output "havip_ids" {
  description = "HAVIP ids, by name."
  value = {
    "data" = alicloud_havip.data.id
  }
}

output "instance_ids" {
  description = "Firewall instance ids, by name."
  value = {
    "fw-a" = alicloud_instance.fw-a.id
    "fw-b" = alicloud_instance.fw-b.id
  }
}
