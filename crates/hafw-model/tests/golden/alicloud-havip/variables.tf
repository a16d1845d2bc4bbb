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

variable "package_url" {
  description = "Where each firewall downloads hafw at first boot: a .deb, or the hafw binary\nitself (installed at /usr/bin/hafw). Empty: the image already has hafw."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^((https?|file)://[^'\\s]+)?$", var.package_url))
    error_message = "package_url must be empty or an http, https or file URL without spaces or quotes."
  }
}

variable "package_sha256" {
  description = "SHA-256 (hex) the package_url download must have; empty: not checked."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([0-9a-f]{64})?$", var.package_sha256))
    error_message = "package_sha256 must be empty or 64 lowercase hex digits (sha256sum FILE)."
  }
}
