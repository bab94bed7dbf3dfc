output "bucket_name" {
  description = "Name of the bucket to mount."
  value       = aws_s3_bucket.images.bucket
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.images.arn
}

output "role_arn" {
  description = "ARN of the gateway role."
  value       = aws_iam_role.gateway.arn
}

output "instance_profile_name" {
  description = "Instance profile to attach to the EC2 instances that run imgfs."
  value       = aws_iam_instance_profile.gateway.name
}

output "policy_arn" {
  description = "ARN of the gateway policy (attach it to other principals that run imgfs)."
  value       = aws_iam_policy.gateway.arn
}

output "user_name" {
  description = "IAM user for hosts outside AWS, or null when create_user is false."
  value       = one(aws_iam_user.gateway[*].name)
}

output "log_group_name" {
  description = "CloudWatch log group for imgfs's log."
  value       = aws_cloudwatch_log_group.imgfs.name
}

output "imgfs_config" {
  description = "An imgfs config file for this bucket: save it as /etc/imgfs/<bucket>.ini."
  value = templatefile("${path.module}/imgfs.ini.tftpl", {
    bucket           = aws_s3_bucket.images.bucket
    instance_profile = aws_iam_instance_profile.gateway.name
    region           = var.region
    cache_max        = var.cache_max
    link_expiry      = var.link_expiry
    upload_max       = var.upload_max
    sse              = local.sse_algorithm
    sse_kms_key_id   = var.kms_key_arn
    uploads_prefix   = local.uploads_prefix
    thumbs_prefix    = local.thumbnails_prefix
  })
}
