variable "region" {
  description = "AWS region of the bucket and the log group."
  type        = string
  default     = "us-east-1"
}

variable "bucket_name" {
  description = "Name of the S3 bucket imgfs mounts (globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "The bucket name must be 3-63 lowercase letters, digits or hyphens (no dots: they break TLS for virtual-hosted addressing)."
  }
}

variable "uploads_prefix" {
  description = "S3 prefix of the originals (imgfs uploads_prefix)."
  type        = string
  default     = "uploads/"

  validation {
    condition     = can(regex("^[^/*?][^*?]*/$", var.uploads_prefix))
    error_message = "uploads_prefix must end with \"/\", not start with \"/\" and hold no \"*\" or \"?\"."
  }
}

variable "thumbnails_prefix" {
  description = "S3 prefix of the thumbnails (imgfs thumbs_prefix)."
  type        = string
  default     = "thumbnails/"

  validation {
    condition     = can(regex("^[^/*?][^*?]*/$", var.thumbnails_prefix))
    error_message = "thumbnails_prefix must end with \"/\", not start with \"/\" and hold no \"*\" or \"?\"."
  }
}

variable "name" {
  description = "Prefix for the names of the IAM role, policy, instance profile, user and log group."
  type        = string
  default     = "imgfs"
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "ARN of a KMS key for default encryption (SSE-KMS). Empty: SSE-S3 (AES256)."
  type        = string
  default     = ""

  validation {
    condition     = var.kms_key_arn == "" || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.kms_key_arn))
    error_message = "kms_key_arn must be the ARN of a KMS key (arn:aws:kms:REGION:ACCOUNT:key/ID), not an alias."
  }
}

variable "versioning" {
  description = "Keep earlier versions of overwritten and deleted objects."
  type        = bool
  default     = false
}

variable "noncurrent_version_expiry_days" {
  description = "With versioning, delete earlier versions this many days after they stop being current (0: keep)."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiry_days >= 0
    error_message = "noncurrent_version_expiry_days must be 0 or more."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which the parts of a multipart upload that was never completed are deleted."
  type        = number
  default     = 1

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1
    error_message = "abort_incomplete_multipart_days must be at least 1."
  }
}

variable "thumbnail_expiry_days" {
  description = "Delete thumbnails/ objects this many days after they were written (0: keep). imgfs makes them again on demand."
  type        = number
  default     = 0

  validation {
    condition     = var.thumbnail_expiry_days >= 0
    error_message = "thumbnail_expiry_days must be 0 or more."
  }
}

variable "create_user" {
  description = "Also create an IAM user with the gateway policy, for hosts outside AWS."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log group, in days."
  type        = number
  default     = 30
}

variable "cache_max" {
  description = "imgfs cache_max written into the generated config (thumbnail cache bound)."
  type        = string
  default     = "1G"
}

variable "link_expiry" {
  description = "imgfs link_expiry written into the generated config: lifetime of presigned URLs in seconds."
  type        = number
  default     = 3600

  validation {
    condition     = var.link_expiry >= 1 && var.link_expiry <= 604800
    error_message = "link_expiry must be between 1 and 604800 seconds."
  }
}

variable "upload_max" {
  description = "imgfs upload_max written into the generated config: the largest file an upload link accepts (a size such as 50M)."
  type        = string
  default     = "50M"
}

variable "upload_origins" {
  description = "Origins whose pages may POST to the bucket (imgfs upload links). \"*\" includes a page opened from a file (Origin: null); name your web server's origin instead if upload pages are only served from there."
  type        = list(string)
  default     = ["*"]
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default = {
    Project = "imgfs"
  }
}
