"""Static checks of infra/ (Terraform) that need neither AWS nor terraform.

Every .tf file is parsed with @cdktf/hcl2json (tests/node, installed by
`make deps`); the tests then read the bucket's settings, the gateway's IAM
policy document and the generated imgfs config from the parsed blocks.
When a terraform binary is on PATH, `terraform fmt -check` runs too, and
`terraform validate` when IMGFS_TF_PLUGIN_DIR names a provider mirror.
"""

import configparser
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
HCL2JSON = ROOT / "tests" / "node" / "hcl2json.js"

# The option names imgfs reads from the [imgfs] section (DESIGN.md's table).
IMGFS_KEYS = {
    "endpoint", "region", "addressing", "profile", "ca_file", "cache_dir",
    "cache_max", "thumb_size", "thumb_crop", "max_pixels", "link_expiry",
    "link_disposition", "part_size", "max_connections", "metadata_ttl",
    "log_level", "sse", "sse_kms_key_id", "uploads_prefix", "thumbs_prefix",
    "upload_max",
}

BUCKET = "${aws_s3_bucket.images.arn}"
LOG_GROUP = "${aws_cloudwatch_log_group.imgfs.arn}"

# The gateway policy, statement by statement: actions and resources.
GATEWAY = {
    "ListUnderPrefixes": ({"s3:ListBucket"}, {BUCKET}),
    "ListMultipartUploads": ({"s3:ListBucketMultipartUploads"}, {BUCKET}),
    "ObjectsUnderPrefixes": (
        {"s3:GetObject", "s3:PutObject", "s3:DeleteObject",
         "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"},
        {BUCKET + "/uploads/*", BUCKET + "/thumbnails/*"},
    ),
    "UseBucketKey": ({"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"},
                     {"${statement.value}"}),
    "ShipLogs": ({"logs:CreateLogStream", "logs:PutLogEvents"},
                 {LOG_GROUP, LOG_GROUP + ":*"}),
}


def _merge(dst, src):
    """Merge hcl2json trees of several files: dicts deep, lists appended."""
    for key, val in src.items():
        if isinstance(val, dict):
            _merge(dst.setdefault(key, {}), val)
        elif isinstance(val, list):
            dst.setdefault(key, []).extend(val)
        else:
            dst[key] = val


@pytest.fixture(scope="module")
def tf():
    """All of infra/*.tf as one tree; each block is a list of bodies."""
    if not (HCL2JSON.parent / "node_modules" / "@cdktf" / "hcl2json").is_dir():
        pytest.fail("@cdktf/hcl2json is missing: run `make deps` "
                    "(npm ci --prefix tests/node)")
    files = sorted(str(p) for p in INFRA.glob("*.tf"))
    assert files, "no .tf files in infra/"
    out = subprocess.run(["node", str(HCL2JSON), *files], check=True,
                         capture_output=True, text=True).stdout
    merged = {}
    for path, tree in json.loads(out).items():
        assert tree, f"{path} parsed to nothing"
        _merge(merged, tree)
    return merged


@pytest.fixture(scope="module")
def local_values(tf):
    """The locals, with ${var.NAME} replaced by the variable's default."""
    def var_default(m):
        default = tf["variable"][m.group(1)][0]["default"]
        assert isinstance(default, str), f"var.{m.group(1)} is not a string"
        return default
    values = {}
    for block in tf["locals"]:
        for name, value in block.items():
            if isinstance(value, str) and re.fullmatch(r"\$\{var\.\w+\}", value):
                value = re.sub(r"\$\{var\.(\w+)\}", var_default, value)
            values[name] = value
    return values


def one(tf, kind, rtype, name):
    bodies = tf[kind][rtype][name]
    assert len(bodies) == 1, f"{rtype}.{name} declared {len(bodies)} times"
    return bodies[0]


def resolve(text, local_values):
    """Replace ${local.NAME} by the local's value where that is a literal."""
    def sub(m):
        val = local_values[m.group(1)]
        assert "${" not in val, f"local.{m.group(1)} is not a literal"
        return val
    return re.sub(r"\$\{local\.(\w+)\}", sub, text)


def test_every_tf_file_parses(tf):
    for kind in ("terraform", "provider", "variable", "resource", "data",
                 "output", "locals"):
        assert kind in tf, f"no {kind} block in infra/"
    aws = tf["terraform"][0]["required_providers"][0]["aws"]
    assert aws["source"] == "hashicorp/aws"


def test_public_access_fully_blocked(tf):
    pab = one(tf, "resource", "aws_s3_bucket_public_access_block", "images")
    assert pab["bucket"] == "${aws_s3_bucket.images.id}"
    for flag in ("block_public_acls", "block_public_policy",
                 "ignore_public_acls", "restrict_public_buckets"):
        assert pab[flag] is True, flag


def test_default_encryption(tf, local_values):
    sse = one(tf, "resource",
              "aws_s3_bucket_server_side_encryption_configuration", "images")
    default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert default["sse_algorithm"] == "${local.sse_algorithm}"
    assert local_values["sse_algorithm"] == \
        '${local.use_kms ? "aws:kms" : "AES256"}'
    assert local_values["use_kms"] == '${var.kms_key_arn != ""}'
    assert tf["variable"]["kms_key_arn"][0]["default"] == ""
    assert "kms_master_key_id" in default


def test_bucket_owner_enforced(tf):
    own = one(tf, "resource", "aws_s3_bucket_ownership_controls", "images")
    assert own["rule"][0]["object_ownership"] == "BucketOwnerEnforced"


def test_lifecycle_aborts_incomplete_multipart_uploads(tf, local_values):
    lc = one(tf, "resource", "aws_s3_bucket_lifecycle_configuration", "images")
    rules = {r["id"]: r for r in lc["rule"]}
    abort = rules["abort-incomplete-multipart-uploads"]
    assert abort["status"] == "Enabled"
    assert abort["filter"] == [{}], "the abort rule must cover the whole bucket"
    days = abort["abort_incomplete_multipart_upload"][0]["days_after_initiation"]
    assert days == "${var.abort_incomplete_multipart_days}"
    assert tf["variable"]["abort_incomplete_multipart_days"][0]["default"] >= 1

    optional = {}
    for dyn in lc["dynamic"]["rule"]:
        content = dyn["content"][0]
        optional[content["id"]] = content
    thumbs = optional["expire-thumbnails"]
    prefix = resolve(thumbs["filter"][0]["prefix"], local_values)
    assert prefix == "thumbnails/"
    assert "expiration" in thumbs
    assert "expire-noncurrent-versions" in optional


def test_bucket_policy_requires_tls(tf):
    doc = one(tf, "data", "aws_iam_policy_document", "tls_only")
    (stmt,) = doc["statement"]
    assert stmt["effect"] == "Deny"
    cond = stmt["condition"][0]
    assert (cond["variable"], cond["values"]) == ("aws:SecureTransport",
                                                  ["false"])
    pol = one(tf, "resource", "aws_s3_bucket_policy", "images")
    assert pol["policy"] == "${data.aws_iam_policy_document.tls_only.json}"


def gateway_statements(tf):
    doc = one(tf, "data", "aws_iam_policy_document", "gateway")
    stmts = list(doc["statement"])
    for dyn in doc.get("dynamic", {}).get("statement", []):
        assert dyn["for_each"] == "${local.use_kms ? [var.kms_key_arn] : []}"
        stmts.extend(dyn["content"])
    return stmts


def test_gateway_policy_is_least_privilege(tf, local_values):
    stmts = gateway_statements(tf)
    got = {}
    for s in stmts:
        assert s["effect"] == "Allow"
        assert "not_actions" not in s and "not_resources" not in s
        assert isinstance(s["actions"], list), "actions must be a literal list"
        assert isinstance(s["resources"], list), "resources must be a literal list"
        resources = {resolve(r, local_values) for r in s["resources"]}
        got[s["sid"]] = (set(s["actions"]), resources)
    assert got == GATEWAY


def test_no_wildcard_action_is_allowed(tf):
    for s in gateway_statements(tf):
        for action in s["actions"]:
            assert "*" not in action, f"wildcard action {action}"
    for name, bodies in tf["data"]["aws_iam_policy_document"].items():
        for s in bodies[0]["statement"]:
            if s.get("effect", "Allow") == "Allow":
                assert not any("*" in a for a in s["actions"]), name


def test_listing_limited_to_the_two_prefixes(tf, local_values):
    (listing,) = [s for s in gateway_statements(tf)
                  if s["sid"] == "ListUnderPrefixes"]
    (cond,) = listing["condition"]
    assert cond["test"] == "StringLike"
    assert cond["variable"] == "s3:prefix"
    values = {resolve(v, local_values) for v in cond["values"]}
    assert values == {"uploads/", "uploads/*", "thumbnails/", "thumbnails/*"}
    assert "" not in values, "the bucket root must not be listable"


def test_kms_only_with_a_key(tf):
    (kms,) = [s for s in gateway_statements(tf) if s["sid"] == "UseBucketKey"]
    cond = kms["condition"][0]
    assert cond["variable"] == "kms:ViaService"


def test_role_trusts_ec2_and_has_an_instance_profile(tf):
    trust = one(tf, "data", "aws_iam_policy_document", "ec2_trust")
    (stmt,) = trust["statement"]
    assert stmt["actions"] == ["sts:AssumeRole"]
    assert stmt["principals"] == [{"type": "Service",
                                   "identifiers": ["ec2.amazonaws.com"]}]
    role = one(tf, "resource", "aws_iam_role", "gateway")
    assert role["assume_role_policy"] == \
        "${data.aws_iam_policy_document.ec2_trust.json}"
    prof = one(tf, "resource", "aws_iam_instance_profile", "gateway")
    assert prof["role"] == "${aws_iam_role.gateway.name}"
    policy = one(tf, "resource", "aws_iam_policy", "gateway")
    assert policy["policy"] == "${data.aws_iam_policy_document.gateway.json}"
    att = one(tf, "resource", "aws_iam_role_policy_attachment", "gateway")
    assert att["policy_arn"] == "${aws_iam_policy.gateway.arn}"


def test_optional_user_gets_the_same_policy(tf):
    user = one(tf, "resource", "aws_iam_user", "gateway")
    assert user["count"] == "${var.create_user ? 1 : 0}"
    att = one(tf, "resource", "aws_iam_user_policy_attachment", "gateway")
    assert att["policy_arn"] == "${aws_iam_policy.gateway.arn}"
    assert tf["variable"]["create_user"][0]["default"] is False
    assert "aws_iam_access_key" not in tf["resource"], \
        "no secret key in the Terraform state"


def test_log_group_has_retention(tf):
    group = one(tf, "resource", "aws_cloudwatch_log_group", "imgfs")
    assert group["retention_in_days"] == "${var.log_retention_days}"


def test_cors_rule_lets_upload_pages_post(tf):
    """The rule test_upload_links.py puts on its buckets (and README
    documents) is the one Terraform sets: POST only, from any origin by
    default (a page opened from a file sends Origin: null)."""
    from test_upload_links import CORS_RULE

    cors = one(tf, "resource", "aws_s3_bucket_cors_configuration", "images")
    assert cors["bucket"] == "${aws_s3_bucket.images.id}"
    (rule,) = cors["cors_rule"]
    assert rule["allowed_methods"] == CORS_RULE["AllowedMethods"] == ["POST"]
    assert rule["allowed_origins"] == "${var.upload_origins}"
    assert tf["variable"]["upload_origins"][0]["default"] == CORS_RULE["AllowedOrigins"]
    assert rule["allowed_headers"] == CORS_RULE["AllowedHeaders"]
    assert rule["expose_headers"] == CORS_RULE["ExposeHeaders"]
    assert rule["max_age_seconds"] == CORS_RULE["MaxAgeSeconds"]


def test_outputs(tf):
    for name in ("bucket_name", "bucket_arn", "role_arn",
                 "instance_profile_name", "log_group_name", "imgfs_config"):
        assert name in tf["output"], name


def render_template(text, values):
    """Render the subset of Terraform's template syntax the config uses:
    ${name} and %{ if name != "" ~}...%{ endif ~}."""
    def cond(m):
        return m.group(2) if values[m.group(1)] != "" else ""
    text = re.sub(r'%\{ if (\w+) != "" ~\}\n(.*?)%\{ endif ~\}\n', cond, text,
                  flags=re.S)
    assert "%{" not in text, "template directive the test cannot render"
    text = re.sub(r"\$\{(\w+)\}", lambda m: str(values[m.group(1)]), text)
    assert "${" not in text, "template expression the test cannot render"
    return text


def template_vars(tf):
    value = tf["output"]["imgfs_config"][0]["value"]
    m = re.fullmatch(r'\$\{templatefile\("\$\{path\.module\}/([\w.]+)", '
                     r'\{(.*)\}\)\}', value, flags=re.S)
    assert m, f"imgfs_config is not a templatefile() call: {value}"
    names = set(re.findall(r"^\s*(\w+)\s*=", m.group(2), flags=re.M))
    return INFRA / m.group(1), names


@pytest.mark.parametrize("kms_key", [
    "", "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
])
def test_imgfs_config_output_is_a_valid_config(tf, kms_key):
    path, passed = template_vars(tf)
    text = path.read_text()
    used = set(re.findall(r"\$\{(\w+)\}", text)) | \
        set(re.findall(r"%\{ if (\w+) ", text))
    assert used == passed, "templatefile() vars and the template disagree"
    values = {
        "bucket": "photos-bucket", "instance_profile": "imgfs-gateway",
        "region": "eu-west-1",
        "cache_max": tf["variable"]["cache_max"][0]["default"],
        "link_expiry": tf["variable"]["link_expiry"][0]["default"],
        "upload_max": tf["variable"]["upload_max"][0]["default"],
        "sse": "aws:kms" if kms_key else "AES256", "sse_kms_key_id": kms_key,
        "uploads_prefix": tf["variable"]["uploads_prefix"][0]["default"],
        "thumbs_prefix": tf["variable"]["thumbnails_prefix"][0]["default"],
    }
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(render_template(text, values))
    assert ini.sections() == ["imgfs"]
    conf = ini["imgfs"]
    assert set(conf) <= IMGFS_KEYS, set(conf) - IMGFS_KEYS
    assert conf["region"] == "eu-west-1"
    assert "endpoint" not in conf, "the endpoint is left to its default"
    assert conf["cache_max"] == "1G"
    assert 1 <= int(conf["link_expiry"]) <= 604800
    assert conf["upload_max"] == "50M"
    assert conf["sse"] == values["sse"]
    assert conf.get("sse_kms_key_id", "") == kms_key
    # The prefixes the IAM policy grants are the ones imgfs is told to use.
    assert (conf["uploads_prefix"], conf["thumbs_prefix"]) == \
        ("uploads/", "thumbnails/")


@pytest.mark.skipif(not shutil.which("terraform"), reason="no terraform")
def test_terraform_fmt():
    res = subprocess.run(["terraform", "fmt", "-check", "-diff", "-recursive",
                          str(INFRA)], capture_output=True, text=True,
                         env={**os.environ, "TF_CLI_CONFIG_FILE": "/dev/null"})
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.skipif(not shutil.which("terraform")
                    or not os.environ.get("IMGFS_TF_PLUGIN_DIR"),
                    reason="needs terraform and IMGFS_TF_PLUGIN_DIR")
def test_terraform_validate(tmp_path):
    work = tmp_path / "infra"
    shutil.copytree(INFRA, work, ignore=shutil.ignore_patterns(".terraform*"))
    env = {**os.environ, "TF_CLI_CONFIG_FILE": "/dev/null",
           "TF_IN_AUTOMATION": "1"}
    subprocess.run(["terraform", "init", "-backend=false", "-input=false",
                    "-plugin-dir=" + os.environ["IMGFS_TF_PLUGIN_DIR"]],
                   cwd=work, env=env, check=True, capture_output=True)
    res = subprocess.run(["terraform", "validate", "-no-color"], cwd=work,
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_imgfs_accepts_the_generated_config(tf, mount, bucket, rgw, tmp_path):
    """imgfs reads every key of the rendered imgfs_config and mounts with it
    (the fixture's -o endpoint, region and cache_dir override the file)."""
    path, _ = template_vars(tf)
    values = {
        "bucket": bucket, "instance_profile": "imgfs-gateway",
        "region": rgw.region,
        "cache_max": tf["variable"]["cache_max"][0]["default"],
        "link_expiry": tf["variable"]["link_expiry"][0]["default"],
        "upload_max": tf["variable"]["upload_max"][0]["default"],
        "sse": "AES256", "sse_kms_key_id": "",
        "uploads_prefix": tf["variable"]["uploads_prefix"][0]["default"],
        "thumbs_prefix": tf["variable"]["thumbnails_prefix"][0]["default"],
    }
    ini = tmp_path / "imgfs.ini"
    ini.write_text(render_template(path.read_text(), values))
    m = mount(bucket, fg_args=["--config", str(ini)])
    rgw.s3.put_object(Bucket=bucket, Key="uploads/a.txt", Body=b"x")
    assert os.listdir(m.uploads) == ["a.txt"]
    assert (m.uploads / "a.txt").read_bytes() == b"x"
    # No write: the config asks for SSE (sse = AES256), which the test RGW
    # refuses over plain HTTP.
