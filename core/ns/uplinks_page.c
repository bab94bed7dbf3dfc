/*
 * uplinks_page: the upload page's HTML, CSS and script (see uplinks.h).
 *
 * The form carries every signed field as a hidden input, so the page works
 * as a plain HTML form; the script reads those inputs back, so no value is
 * ever written into script text. The file input comes last, as S3 wants.
 */
#include "ns/uplinks.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "ns/links.h"

static const char page_style[] =
	":root{color-scheme:light dark;font-family:system-ui,sans-serif}\n"
	"body{margin:0 auto;padding:1rem 1.5rem;max-width:46rem}\n"
	"h1{font-size:1.3rem;margin:0 0 .3rem}\n"
	"header p{margin:0 0 1rem;opacity:.8;font-size:.9rem}\n"
	"code{font-size:.95em;overflow-wrap:anywhere}\n"
	"form{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center}\n"
	"#drop{margin:1rem 0;padding:2rem 1rem;text-align:center;"
	"border:2px dashed rgba(127,127,127,.6);border-radius:10px}\n"
	"#drop.over{background:rgba(80,140,255,.15);border-color:#58f}\n"
	"#files{list-style:none;padding:0;margin:0}\n"
	"#files li{display:grid;grid-template-columns:1fr 8rem;gap:.2rem .8rem;"
	"padding:.5rem 0;border-bottom:1px solid rgba(127,127,127,.25)}\n"
	"#files progress{width:100%}\n"
	".name{overflow-wrap:anywhere}\n"
	".status{grid-column:1/3;font-size:.85rem}\n"
	"li[data-state=done] .status{color:#2a2}\n"
	"li[data-state=failed] .status{color:#d33}\n"
	".expired{color:#d33;font-weight:bold}\n"
	".js .nojs{display:none}\n";

/* The script: a queue of uploads, three at a time, each a progress bar and
 * a status line; S3's error codes a POST can get, in words. */
static const char page_script[] =
	"(function () {\n"
	"  'use strict';\n"
	"  var form = document.getElementById('upload');\n"
	"  var input = form.querySelector('input[type=file]');\n"
	"  var list = document.getElementById('files');\n"
	"  var drop = document.getElementById('drop');\n"
	"  var summary = document.getElementById('summary');\n"
	"  var limit = Number(form.dataset.maxBytes);\n"
	"  var expires = new Date(form.dataset.expires);\n"
	"  var words = {\n"
	"    EntityTooLarge: 'the file is larger than this link allows',\n"
	"    EntityTooSmall: 'the file is empty',\n"
	"    AccessDenied: 'the link does not allow this upload: it has expired, "
	"or the file is not an image, or its name leaves the folder',\n"
	"    SignatureDoesNotMatch: 'the link is damaged: its signature does not "
	"match its policy',\n"
	"    InvalidPolicyDocument: 'the link is damaged: its policy cannot be "
	"read',\n"
	"    ExpiredToken: 'the credentials that signed this link have expired',\n"
	"    InvalidAccessKeyId: 'the key that signed this link is no longer "
	"valid (it was revoked)',\n"
	"    InvalidToken: 'the credentials that signed this link are no longer "
	"valid',\n"
	"    NoSuchBucket: 'the bucket no longer exists',\n"
	"    MalformedPOSTRequest: 'the upload was not a valid form',\n"
	"    InvalidArgument: 'the server refused a field of the form',\n"
	"    RequestTimeout: 'the upload was too slow and timed out',\n"
	"    SlowDown: 'the server is busy: try again in a moment',\n"
	"    ServiceUnavailable: 'the server is busy: try again in a moment',\n"
	"    InternalError: 'the server failed: try again'\n"
	"  };\n"
	"  var counts = {done: 0, failed: 0, active: 0};\n"
	"  var queue = [];\n"
	"  function size(n) {\n"
	"    var u = ['bytes', 'KiB', 'MiB', 'GiB'], i = 0;\n"
	"    while (n >= 1024 && i < 3) { n /= 1024; i++; }\n"
	"    return (i ? n.toFixed(1) : n) + ' ' + u[i];\n"
	"  }\n"
	"  function show() {\n"
	"    summary.textContent = counts.done + ' uploaded, ' + counts.failed +\n"
	"      ' refused' + (counts.active + queue.length ? ', ' +\n"
	"      (counts.active + queue.length) + ' to go' : '');\n"
	"  }\n"
	"  function reason(xhr) {\n"
	"    var doc = new DOMParser().parseFromString(xhr.responseText || '',\n"
	"                                              'application/xml');\n"
	"    var c = doc.getElementsByTagName('Code')[0];\n"
	"    var m = doc.getElementsByTagName('Message')[0];\n"
	"    var code = c ? c.textContent : 'HTTP ' + xhr.status;\n"
	"    var text = words[code] || 'the server refused the upload';\n"
	"    return text + ' (' + code + (m && m.textContent ? ': ' +\n"
	"      m.textContent : '') + ')';\n"
	"  }\n"
	"  function finish(item, ok, text) {\n"
	"    item.li.dataset.state = ok ? 'done' : 'failed';\n"
	"    item.status.textContent = text;\n"
	"    if (ok) item.bar.value = item.bar.max;\n"
	"    counts[ok ? 'done' : 'failed']++;\n"
	"    counts.active--;\n"
	"    next();\n"
	"  }\n"
	"  function send(item) {\n"
	"    var fd = new FormData(), xhr = new XMLHttpRequest();\n"
	"    form.querySelectorAll('input[type=hidden]').forEach(function (h) {\n"
	"      fd.append(h.name, h.value);\n"
	"    });\n"
	"    fd.append('Content-Type', item.file.type || "
	"'application/octet-stream');\n"
	"    fd.append('file', item.file, item.file.name);\n"
	"    xhr.open('POST', form.action);\n"
	"    xhr.upload.onprogress = function (e) {\n"
	"      if (e.lengthComputable) { item.bar.max = e.total; "
	"item.bar.value = e.loaded; }\n"
	"    };\n"
	"    xhr.onload = function () {\n"
	"      if (xhr.status >= 200 && xhr.status < 300)\n"
	"        finish(item, true, 'uploaded to ' + form.dataset.prefix + "
	"item.file.name);\n"
	"      else\n"
	"        finish(item, false, 'refused: ' + reason(xhr));\n"
	"    };\n"
	"    xhr.onerror = function () {\n"
	"      finish(item, false, 'failed: the bucket could not be reached, or "
	"it does not accept uploads from this page (its CORS rule)');\n"
	"    };\n"
	"    item.li.dataset.state = 'sending';\n"
	"    item.status.textContent = 'uploading ' + size(item.file.size);\n"
	"    xhr.send(fd);\n"
	"  }\n"
	"  function next() {\n"
	"    while (counts.active < 3 && queue.length) {\n"
	"      counts.active++;\n"
	"      send(queue.shift());\n"
	"    }\n"
	"    show();\n"
	"  }\n"
	"  function add(files) {\n"
	"    Array.prototype.forEach.call(files, function (file) {\n"
	"      var li = document.createElement('li');\n"
	"      var item = {file: file, li: li,\n"
	"                  bar: document.createElement('progress'),\n"
	"                  status: document.createElement('span')};\n"
	"      var name = document.createElement('span');\n"
	"      name.className = 'name';\n"
	"      name.textContent = file.name + ' (' + size(file.size) + ')';\n"
	"      item.bar.max = 1; item.bar.value = 0;\n"
	"      item.status.className = 'status';\n"
	"      item.status.textContent = 'waiting';\n"
	"      li.dataset.state = 'waiting';\n"
	"      li.append(name, item.bar, item.status);\n"
	"      list.append(li);\n"
	"      queue.push(item);\n"
	"    });\n"
	"    next();\n"
	"  }\n"
	"  document.documentElement.className = 'js';\n"
	"  input.multiple = true;\n"
	"  input.required = false;\n"
	"  drop.hidden = false;\n"
	"  form.addEventListener('submit', function (e) {\n"
	"    e.preventDefault();\n"
	"    add(input.files);\n"
	"    input.value = '';\n"
	"  });\n"
	"  input.addEventListener('change', function () {\n"
	"    if (input.files.length) { add(input.files); input.value = ''; }\n"
	"  });\n"
	"  drop.addEventListener('dragover', function (e) {\n"
	"    e.preventDefault(); drop.className = 'over';\n"
	"  });\n"
	"  drop.addEventListener('dragleave', function () { drop.className = ''; "
	"});\n"
	"  drop.addEventListener('drop', function (e) {\n"
	"    e.preventDefault(); drop.className = '';\n"
	"    add(e.dataTransfer.files);\n"
	"  });\n"
	"  function tick() {\n"
	"    if (Date.now() >= expires.getTime()) {\n"
	"      document.getElementById('expires').className = 'expired';\n"
	"      summary.textContent = 'This link has expired: ask for a new one.';\n"
	"      return;\n"
	"    }\n"
	"    setTimeout(tick, 1000);\n"
	"  }\n"
	"  tick();\n"
	"  show();\n"
	"})();\n";

/* Image types offered to the form without JavaScript, which cannot read a
 * file's type; the script sends each file's own type instead. */
static const char *const nojs_types[] = {"image/jpeg", "image/png",
					 "image/webp", "image/gif",
					 "image/avif", "image/heic",
					 "image/tiff"};

int uplinks_size_text(uint64_t bytes, struct buf *out)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
	uint64_t scale = 1024;
	int i = 0;

	if (bytes < 1024)
		return buf_addf(out, "%" PRIu64 " byte%s", bytes,
				bytes == 1 ? "" : "s");
	while (i < 3 && bytes >= scale * 1024) {
		scale *= 1024;
		i++;
	}
	if (bytes % scale == 0)
		return buf_addf(out, "%" PRIu64 " %s", bytes / scale, units[i]);
	return buf_addf(out, "%.1f %s", (double)bytes / (double)scale, units[i]);
}

/* <name attr="escaped value"> pieces. */
static int add_attr(struct buf *out, const char *name, const char *value)
{
	int err = buf_addf(out, " %s=\"", name);

	if (!err)
		err = links_html_escape(value, out);
	return err ? err : buf_adds(out, "\"");
}

static int page_head(const char *bucket, const char *prefix,
		     struct buf *out)
{
	int err = buf_adds(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
			   "<meta charset=\"utf-8\">\n"
			   "<meta name=\"viewport\" content=\"width=device-width, "
			   "initial-scale=1\">\n"
			   "<meta name=\"referrer\" content=\"no-referrer\">\n"
			   "<title>Upload to ");

	if (!err)
		err = links_html_escape(prefix, out);
	if (!err && bucket) {
		err = buf_adds(out, " in ");
		if (!err)
			err = links_html_escape(bucket, out);
	}
	if (!err)
		err = buf_addf(out, " - imgfs</title>\n<style>\n%s</style>\n"
			       "</head>\n<body>\n", page_style);
	return err;
}

static int page_header(const char *bucket, const char *prefix,
		       uint64_t max_bytes, time_t expires_at, struct buf *out)
{
	char iso[32] = "", human[32] = "";
	struct tm tm;
	int err;

	if (gmtime_r(&expires_at, &tm)) {
		strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
		strftime(human, sizeof(human), "%Y-%m-%d %H:%M:%S UTC", &tm);
	}
	err = buf_adds(out, "<header><h1>Upload images to <code id=\"folder\">");
	if (!err)
		err = links_html_escape(prefix, out);
	if (!err)
		err = buf_adds(out, "</code></h1>\n<p>");
	if (!err && bucket) {
		err = buf_adds(out, "Bucket <code>");
		if (!err)
			err = links_html_escape(bucket, out);
		if (!err)
			err = buf_adds(out, "</code> &middot; ");
	}
	if (!err)
		err = buf_adds(out, "images only, up to <b id=\"limit\">");
	if (!err)
		err = uplinks_size_text(max_bytes, out);
	if (!err)
		err = buf_addf(out, "</b> each &middot; this link works until "
			       "<time id=\"expires\" datetime=\"%s\">%s</time>"
			       "</p></header>\n", iso, human);
	return err;
}

/* The form: the signed fields as hidden inputs, a type choice for the
 * script-less post, then the file (S3 reads fields after it no more). */
static int page_form(const struct post_form *f, const char *prefix,
		     uint64_t max_bytes, time_t expires_at, struct buf *out)
{
	char iso[32] = "";
	struct tm tm;
	int err;

	if (gmtime_r(&expires_at, &tm))
		strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
	err = buf_adds(out, "<form id=\"upload\" method=\"post\" "
		       "enctype=\"multipart/form-data\"");
	if (!err)
		err = add_attr(out, "action", f->url);
	if (!err)
		err = add_attr(out, "data-prefix", prefix);
	if (!err)
		err = buf_addf(out, " data-max-bytes=\"%" PRIu64 "\" "
			       "data-expires=\"%s\">\n", max_bytes, iso);
	for (size_t i = 0; i < f->nfields && !err; i++) {
		err = buf_adds(out, "<input type=\"hidden\"");
		if (!err)
			err = add_attr(out, "name", f->fields[i].name);
		if (!err)
			err = add_attr(out, "value", f->fields[i].value);
		if (!err)
			err = buf_adds(out, ">\n");
	}
	if (!err)
		err = buf_adds(out, "<label class=\"nojs\">Type <select "
			       "name=\"Content-Type\">");
	for (size_t i = 0; i < sizeof(nojs_types) / sizeof(*nojs_types) && !err;
	     i++)
		err = buf_addf(out, "<option>%s</option>", nojs_types[i]);
	if (!err)
		err = buf_adds(out, "</select></label>\n"
			       "<input type=\"file\" name=\"file\" "
			       "accept=\"image/*\" required>\n"
			       "<button type=\"submit\">Upload</button>\n</form>\n");
	return err;
}

static int page_body(struct buf *out)
{
	return buf_addf(out,
			"<p class=\"nojs\">Without JavaScript one file goes up "
			"per upload; the browser stays on this page when it "
			"succeeds and shows the server's answer when it does "
			"not.</p>\n"
			"<div id=\"drop\" hidden>Drop images here, or choose "
			"them above: each goes straight to the bucket.</div>\n"
			"<p id=\"summary\" aria-live=\"polite\"></p>\n"
			"<ul id=\"files\"></ul>\n"
			"<script>\n%s</script>\n</body>\n</html>\n",
			page_script);
}

int uplinks_page_render(const struct post_form *f, const char *bucket,
			const char *prefix, uint64_t max_bytes,
			time_t expires_at, struct buf *out)
{
	int err = page_head(bucket, prefix, out);

	if (!err)
		err = page_header(bucket, prefix, max_bytes, expires_at, out);
	if (!err)
		err = page_form(f, prefix, max_bytes, expires_at, out);
	if (!err)
		err = page_body(out);
	return err;
}
