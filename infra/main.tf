# The bucket imgfs mounts, and the least privilege its gateway hosts need.
#
# imgfs reads and writes only under two prefixes: uploads/ (the originals) and
# thumbnails/ (generated copies). The IAM policy below grants exactly the S3
# calls the daemon makes under those prefixes and nothing at the bucket root;
# the generated config names the same prefixes.

locals {
  uploads_prefix    = var.uploads_prefix
  thumbnails_prefix = var.thumbnails_prefix

  use_kms        = var.kms_key_arn != ""
  sse_algorithm  = local.use_kms ? "aws:kms" : "AES256"
  log_group_name = "/imgfs/${var.name}"
}

# ---------------------------------------------------------------- bucket

resource "aws_s3_bucket" "images" {
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_public_access_block" "images" {
  bucket = aws_s3_bucket.images.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "images" {
  bucket = aws_s3_bucket.images.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "images" {
  bucket = aws_s3_bucket.images.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.sse_algorithm
      kms_master_key_id = local.use_kms ? var.kms_key_arn : null
    }
    bucket_key_enabled = local.use_kms
  }
}

resource "aws_s3_bucket_versioning" "images" {
  count  = var.versioning ? 1 : 0
  bucket = aws_s3_bucket.images.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "images" {
  bucket = aws_s3_bucket.images.id

  # imgfs aborts its own failed uploads; this catches the parts left behind
  # when a host dies in the middle of one.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  dynamic "rule" {
    for_each = var.thumbnail_expiry_days > 0 ? [var.thumbnail_expiry_days] : []

    content {
      id     = "expire-thumbnails"
      status = "Enabled"

      filter {
        prefix = local.thumbnails_prefix
      }

      expiration {
        days = rule.value
      }
    }
  }

  dynamic "rule" {
    for_each = var.versioning && var.noncurrent_version_expiry_days > 0 ? [var.noncurrent_version_expiry_days] : []

    content {
      id     = "expire-noncurrent-versions"
      status = "Enabled"

      filter {}

      noncurrent_version_expiration {
        noncurrent_days = rule.value
      }
    }
  }

  # Rules that touch versions need versioning configured first.
  depends_on = [aws_s3_bucket_versioning.images]
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.images.arn,
      "${aws_s3_bucket.images.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "images" {
  bucket = aws_s3_bucket.images.id
  policy = data.aws_iam_policy_document.tls_only.json

  # S3 rejects a bucket policy while the public access block is being set.
  depends_on = [aws_s3_bucket_public_access_block.images]
}

# ---------------------------------------------------------------- upload links

# imgfs' upload pages (.links/upload/.../index.html) post each image straight
# to the bucket from the browser, under a POST policy the gateway signed; a
# browser sends those requests only when a CORS rule allows them. The rule
# allows POST alone: what a POST may store (which keys, how large, which
# types, until when) is for each signed policy to say, and S3 checks it.
resource "aws_s3_bucket_cors_configuration" "images" {
  bucket = aws_s3_bucket.images.id

  cors_rule {
    id              = "imgfs-upload-links"
    allowed_methods = ["POST"]
    allowed_origins = var.upload_origins
    allowed_headers = ["*"]
    expose_headers  = ["ETag", "Location"]
    max_age_seconds = 3000
  }
}

# ---------------------------------------------------------------- logs

resource "aws_cloudwatch_log_group" "imgfs" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
}

# ---------------------------------------------------------------- IAM

data "aws_iam_policy_document" "gateway" {
  # Listing: only below the two prefixes, never the bucket root.
  statement {
    sid       = "ListUnderPrefixes"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.images.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values = [
        local.uploads_prefix,
        "${local.uploads_prefix}*",
        local.thumbnails_prefix,
        "${local.thumbnails_prefix}*",
      ]
    }
  }

  # Finding multipart uploads a crashed daemon left behind.
  statement {
    sid       = "ListMultipartUploads"
    effect    = "Allow"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.images.arn]
  }

  # Objects: read, write (including multipart and server-side copy), delete.
  statement {
    sid    = "ObjectsUnderPrefixes"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [
      "${aws_s3_bucket.images.arn}/${local.uploads_prefix}*",
      "${aws_s3_bucket.images.arn}/${local.thumbnails_prefix}*",
    ]
  }

  # SSE-KMS: S3 asks KMS for data keys on the caller's behalf.
  dynamic "statement" {
    for_each = local.use_kms ? [var.kms_key_arn] : []

    content {
      sid       = "UseBucketKey"
      effect    = "Allow"
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${var.region}.amazonaws.com"]
      }
    }
  }

  # The CloudWatch agent on the same host ships imgfs's log to this group.
  statement {
    sid     = "ShipLogs"
    effect  = "Allow"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      aws_cloudwatch_log_group.imgfs.arn,
      "${aws_cloudwatch_log_group.imgfs.arn}:*",
    ]
  }
}

resource "aws_iam_policy" "gateway" {
  name        = "${var.name}-gateway"
  description = "imgfs gateway: objects under uploads/ and thumbnails/ of ${aws_s3_bucket.images.bucket}, and its log group."
  policy      = data.aws_iam_policy_document.gateway.json
}

data "aws_iam_policy_document" "ec2_trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "gateway" {
  name               = "${var.name}-gateway"
  description        = "Assumed by EC2 instances that mount ${aws_s3_bucket.images.bucket} with imgfs."
  assume_role_policy = data.aws_iam_policy_document.ec2_trust.json
}

resource "aws_iam_role_policy_attachment" "gateway" {
  role       = aws_iam_role.gateway.name
  policy_arn = aws_iam_policy.gateway.arn
}

resource "aws_iam_instance_profile" "gateway" {
  name = "${var.name}-gateway"
  role = aws_iam_role.gateway.name
}

# For hosts outside AWS. No access key is created here, so that no secret
# lands in the Terraform state: make one with `aws iam create-access-key`.
resource "aws_iam_user" "gateway" {
  count = var.create_user ? 1 : 0
  name  = "${var.name}-gateway"
}

resource "aws_iam_user_policy_attachment" "gateway" {
  count      = var.create_user ? 1 : 0
  user       = aws_iam_user.gateway[0].name
  policy_arn = aws_iam_policy.gateway.arn
}
