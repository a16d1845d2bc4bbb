variable "region" {
  description = "Alibaba Cloud region; the deployment file says this one."
  type        = string
  default     = "cn-hangzhou"
}

variable "image_id" {
  description = "Image for the firewall instances (region- and account-specific)."
  type        = string
}

variable "key_pair_name" {
  description = "Existing ECS key pair for logging in to the firewalls; no password is set."
  type        = string
  sensitive   = true
}

variable "system_disk_category" {
  description = "System disk category; g7 and newer families need ESSD."
  type        = string
  default     = "cloud_essd"
}
