// Print the JSON form of the HCL files named on the command line, as one
// object keyed by path. Used by tests/e2e/test_infra.py to read infra/*.tf.
"use strict";
const fs = require("fs");
const { parse } = require("@cdktf/hcl2json");

async function main(paths) {
  const out = {};
  for (const p of paths) {
    out[p] = await parse(p, fs.readFileSync(p, "utf8"));
  }
  process.stdout.write(JSON.stringify(out));
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`hcl2json: ${err.message || err}\n`);
  process.exit(1);
});
