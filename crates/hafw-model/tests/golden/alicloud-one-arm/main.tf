# Rendered by `hafw plan terraform` from deployment one-arm. Edit the deployment
# file and render again rather than editing this file.
# aliyun/alicloud: the newest argument used appeared in 1.252.0 (schema table
# checked against the provider at v1.289.0-8-g81c43b672, 81c43b672).
terraform {
  required_providers {
    alicloud = {
      source  = "aliyun/alicloud"
      version = ">= 1.252.0, < 2.0.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.0.0, < 4.0.0"
    }
  }
}

# Credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET
# (or use a profile); they are never written here.
provider "alicloud" {
  region = var.region
}

resource "alicloud_vpc" "hafw-vpc" {
  vpc_name   = "hafw-vpc"
  cidr_block = "10.0.0.0/16"
}

resource "alicloud_vswitch" "mgmt" {
  vswitch_name = "mgmt"
  vpc_id       = alicloud_vpc.hafw-vpc.id
  cidr_block   = "10.0.0.0/24"
  zone_id      = "cn-hangzhou-h"
}

resource "alicloud_vswitch" "data" {
  vswitch_name = "data"
  vpc_id       = alicloud_vpc.hafw-vpc.id
  cidr_block   = "10.0.1.0/24"
  zone_id      = "cn-hangzhou-h"
}

resource "alicloud_vswitch" "ha2" {
  vswitch_name = "ha2"
  vpc_id       = alicloud_vpc.hafw-vpc.id
  cidr_block   = "10.0.3.0/24"
  zone_id      = "cn-hangzhou-h"
}

resource "alicloud_vswitch" "servers" {
  vswitch_name = "servers"
  vpc_id       = alicloud_vpc.hafw-vpc.id
  cidr_block   = "10.0.10.0/24"
  zone_id      = "cn-hangzhou-h"
}

# One security group for every firewall ENI. Members of a group may talk
# freely unless inner_access_policy is Drop; it is, so only the rules below
# reach a firewall. The firewall's own policy still decides; these rules only
# keep out what the policy could never accept. Security groups are stateful,
# so replies need no rule; egress is open by default.
resource "alicloud_security_group" "firewall" {
  security_group_name = "one-arm-firewall"
  vpc_id              = alicloud_vpc.hafw-vpc.id
  inner_access_policy = "Drop"
}

# HA heartbeats (UDP 28780) from fw-a over its management path
resource "alicloud_security_group_rule" "allow_-udp_-10-0-0-11-32_-28780" {
  type              = "ingress"
  ip_protocol       = "udp"
  nic_type          = "intranet"
  policy            = "accept"
  port_range        = "28780/28780"
  priority          = 1
  security_group_id = alicloud_security_group.firewall.id
  cidr_ip           = "10.0.0.11/32"
}

# HA heartbeats (UDP 28780) from fw-a over its ha2 path
resource "alicloud_security_group_rule" "allow_-udp_-10-0-3-11-32_-28780" {
  type              = "ingress"
  ip_protocol       = "udp"
  nic_type          = "intranet"
  policy            = "accept"
  port_range        = "28780/28780"
  priority          = 1
  security_group_id = alicloud_security_group.firewall.id
  cidr_ip           = "10.0.3.11/32"
}

# HA heartbeats (UDP 28780) from fw-b over its management path
resource "alicloud_security_group_rule" "allow_-udp_-10-0-0-12-32_-28780" {
  type              = "ingress"
  ip_protocol       = "udp"
  nic_type          = "intranet"
  policy            = "accept"
  port_range        = "28780/28780"
  priority          = 1
  security_group_id = alicloud_security_group.firewall.id
  cidr_ip           = "10.0.0.12/32"
}

# HA heartbeats (UDP 28780) from fw-b over its ha2 path
resource "alicloud_security_group_rule" "allow_-udp_-10-0-3-12-32_-28780" {
  type              = "ingress"
  ip_protocol       = "udp"
  nic_type          = "intranet"
  policy            = "accept"
  port_range        = "28780/28780"
  priority          = 1
  security_group_id = alicloud_security_group.firewall.id
  cidr_ip           = "10.0.3.12/32"
}

# HA2 session and config sync (TCP 28780) from fw-a
resource "alicloud_security_group_rule" "allow_-tcp_-10-0-3-11-32_-28780" {
  type              = "ingress"
  ip_protocol       = "tcp"
  nic_type          = "intranet"
  policy            = "accept"
  port_range        = "28780/28780"
  priority          = 1
  security_group_id = alicloud_security_group.firewall.id
  cidr_ip           = "10.0.3.11/32"
}

# HA2 session and config sync (TCP 28780) from fw-b
resource "alicloud_security_group_rule" "allow_-tcp_-10-0-3-12-32_-28780" {
  type              = "ingress"
  ip_protocol       = "tcp"
  nic_type          = "intranet"
  policy            = "accept"
  port_range        = "28780/28780"
  priority          = 1
  security_group_id = alicloud_security_group.firewall.id
  cidr_ip           = "10.0.3.12/32"
}

# management: SSH (TCP 22) from fw-a's management vSwitch; management: SSH (TCP 22) from fw-b's management vSwitch
resource "alicloud_security_group_rule" "allow_-tcp_-10-0-0-0-24_-22" {
  type              = "ingress"
  ip_protocol       = "tcp"
  nic_type          = "intranet"
  policy            = "accept"
  port_range        = "22/22"
  priority          = 1
  security_group_id = alicloud_security_group.firewall.id
  cidr_ip           = "10.0.0.0/24"
}

# policy rule web-in
resource "alicloud_security_group_rule" "allow_-tcp_-0-0-0-0-0_-80" {
  type              = "ingress"
  ip_protocol       = "tcp"
  nic_type          = "intranet"
  policy            = "accept"
  port_range        = "80/80"
  priority          = 1
  security_group_id = alicloud_security_group.firewall.id
  cidr_ip           = "0.0.0.0/0"
}

# policy rule servers-out
resource "alicloud_security_group_rule" "allow_-all_-10-0-10-0-24_-any" {
  type              = "ingress"
  ip_protocol       = "all"
  nic_type          = "intranet"
  policy            = "accept"
  port_range        = "-1/-1"
  priority          = 1
  security_group_id = alicloud_security_group.firewall.id
  cidr_ip           = "10.0.10.0/24"
}

# The pair's HA key: 32 random bytes, given to both nodes in their user data.
# It is in the Terraform state (keep the state secret) and in the instances'
# user data, which each node's ruleset lets only root read from the metadata
# service. User data is read at first boot only (changes are ignored), so a new
# key reaches running nodes only by hand: hafw keygen, the same file on both.
resource "random_id" "ha_key" {
  byte_length = 32
}

locals {
  user_data_vars = {
    ha_key_b64     = random_id.ha_key.b64_std
    package_url    = var.package_url
    package_sha256 = var.package_sha256
  }
}

# Firewall fw-a. Its primary ENI fw-a-mgmt (management) is created with the instance.
# Its host name is the node name (hafw.service falls back to it), and its user
# data is the node's first boot (the template beside this file).
resource "alicloud_instance" "fw-a" {
  instance_name        = "fw-a"
  host_name            = "fw-a"
  instance_type        = "ecs.g6.xlarge"
  image_id             = var.image_id
  key_name             = var.key_pair_name
  system_disk_category = var.system_disk_category
  vswitch_id           = alicloud_vswitch.mgmt.id
  private_ip           = "10.0.0.11"
  security_groups      = [alicloud_security_group.firewall.id]
  user_data            = base64encode(templatefile(join("/", [path.module, "user-data-fw-a.sh.tftpl"]), local.user_data_vars))

  # First boot only: a changed user_data would reboot the instance (both at once).
  # Change the policy with hafw config apply.
  lifecycle {
    ignore_changes = [user_data]
  }
}

resource "alicloud_ecs_network_interface" "fw-a-data" {
  network_interface_name = "fw-a-data"
  vswitch_id             = alicloud_vswitch.data.id
  primary_ip_address     = "10.0.1.11"
  security_group_ids     = [alicloud_security_group.firewall.id]
  source_dest_check      = false
}

resource "alicloud_ecs_network_interface_attachment" "fw-a-data" {
  network_interface_id = alicloud_ecs_network_interface.fw-a-data.id
  instance_id          = alicloud_instance.fw-a.id
}

resource "alicloud_ecs_network_interface" "fw-a-ha2" {
  network_interface_name = "fw-a-ha2"
  vswitch_id             = alicloud_vswitch.ha2.id
  primary_ip_address     = "10.0.3.11"
  security_group_ids     = [alicloud_security_group.firewall.id]
  source_dest_check      = true
}

resource "alicloud_ecs_network_interface_attachment" "fw-a-ha2" {
  network_interface_id = alicloud_ecs_network_interface.fw-a-ha2.id
  instance_id          = alicloud_instance.fw-a.id

  depends_on = [alicloud_ecs_network_interface_attachment.fw-a-data]
}

# Firewall fw-b. Its primary ENI fw-b-mgmt (management) is created with the instance.
# Its host name is the node name (hafw.service falls back to it), and its user
# data is the node's first boot (the template beside this file).
resource "alicloud_instance" "fw-b" {
  instance_name        = "fw-b"
  host_name            = "fw-b"
  instance_type        = "ecs.g6.xlarge"
  image_id             = var.image_id
  key_name             = var.key_pair_name
  system_disk_category = var.system_disk_category
  vswitch_id           = alicloud_vswitch.mgmt.id
  private_ip           = "10.0.0.12"
  security_groups      = [alicloud_security_group.firewall.id]
  user_data            = base64encode(templatefile(join("/", [path.module, "user-data-fw-b.sh.tftpl"]), local.user_data_vars))

  # First boot only: a changed user_data would reboot the instance (both at once).
  # Change the policy with hafw config apply.
  lifecycle {
    ignore_changes = [user_data]
  }
}

resource "alicloud_ecs_network_interface" "fw-b-data" {
  network_interface_name = "fw-b-data"
  vswitch_id             = alicloud_vswitch.data.id
  primary_ip_address     = "10.0.1.12"
  security_group_ids     = [alicloud_security_group.firewall.id]
  source_dest_check      = false
}

resource "alicloud_ecs_network_interface_attachment" "fw-b-data" {
  network_interface_id = alicloud_ecs_network_interface.fw-b-data.id
  instance_id          = alicloud_instance.fw-b.id
}

resource "alicloud_ecs_network_interface" "fw-b-ha2" {
  network_interface_name = "fw-b-ha2"
  vswitch_id             = alicloud_vswitch.ha2.id
  primary_ip_address     = "10.0.3.12"
  security_group_ids     = [alicloud_security_group.firewall.id]
  source_dest_check      = true
}

resource "alicloud_ecs_network_interface_attachment" "fw-b-ha2" {
  network_interface_id = alicloud_ecs_network_interface.fw-b-ha2.id
  instance_id          = alicloud_instance.fw-b.id

  depends_on = [alicloud_ecs_network_interface_attachment.fw-b-data]
}

resource "alicloud_vpc_ha_vip" "data" {
  ha_vip_name = "data"
  vswitch_id  = alicloud_vswitch.data.id
  ip_address  = "10.0.1.100"
}

resource "alicloud_havip_attachment" "data_-fw-a-data" {
  ha_vip_id     = alicloud_vpc_ha_vip.data.id
  instance_id   = alicloud_ecs_network_interface.fw-a-data.id
  instance_type = "NetworkInterface"

  depends_on = [alicloud_ecs_network_interface_attachment.fw-a-data]
}

resource "alicloud_havip_attachment" "data_-fw-b-data" {
  ha_vip_id     = alicloud_vpc_ha_vip.data.id
  instance_id   = alicloud_ecs_network_interface.fw-b-data.id
  instance_type = "NetworkInterface"

  depends_on = [alicloud_ecs_network_interface_attachment.fw-b-data, alicloud_havip_attachment.data_-fw-a-data]
}

# EIP web. The file's 203.0.113.10 is the lab's stand-in: the cloud allocates the real
# address (output eip_addresses).
resource "alicloud_eip_address" "web" {
  address_name         = "web"
  bandwidth            = "5"
  internet_charge_type = "PayByTraffic"
  payment_type         = "PayAsYouGo"
}

resource "alicloud_eip_association" "web" {
  allocation_id = alicloud_eip_address.web.id
  instance_id   = alicloud_vpc_ha_vip.data.id
  instance_type = "HaVip"
}

# No management EIPs: policy.management.allow names no source outside the VPC, so
# operators reach the nodes from inside it (a bastion or VPN in the management
# vSwitch). Add your public prefix to allow and render again for one EIP per node.

resource "alicloud_route_table" "servers-via-firewall" {
  route_table_name = "servers-via-firewall"
  vpc_id           = alicloud_vpc.hafw-vpc.id
  associate_type   = "VSwitch"
}

resource "alicloud_route_table_attachment" "servers-via-firewall_-servers" {
  route_table_id = alicloud_route_table.servers-via-firewall.id
  vswitch_id     = alicloud_vswitch.servers.id
}

resource "alicloud_route_entry" "servers-via-firewall_-0-0-0-0-0" {
  route_table_id        = alicloud_route_table.servers-via-firewall.id
  destination_cidrblock = "0.0.0.0/0"
  nexthop_type          = "HaVip"
  nexthop_id            = alicloud_vpc_ha_vip.data.id

  depends_on = [alicloud_havip_attachment.data_-fw-a-data, alicloud_havip_attachment.data_-fw-b-data]
}

data "alicloud_ecs_network_interfaces" "fw-a" {
  instance_id = alicloud_instance.fw-a.id
  type        = "Primary"
}

data "alicloud_ecs_network_interfaces" "fw-b" {
  instance_id = alicloud_instance.fw-b.id
  type        = "Primary"
}
