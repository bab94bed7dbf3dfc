// make bench: thumbnails of the given files with sharp (libvips in
// process), SIZE x SIZE inside, same format as the source, `concurrency`
// files at once (default: the number of cores). Prints the seconds taken.
"use strict";
const os = require("os");
const path = require("path");
const sharp = require(path.join(__dirname, "..", "node", "node_modules", "sharp"));

async function main() {
  const [size, conc, ...files] = process.argv.slice(2);
  const edge = parseInt(size, 10);
  const workers = parseInt(conc, 10) || os.cpus().length;
  let next = 0;
  const t0 = process.hrtime.bigint();
  async function worker() {
    while (next < files.length) {
      const f = files[next++];
      await sharp(f).rotate().resize(edge, edge, { fit: "inside", withoutEnlargement: true })
        .toBuffer();
    }
  }
  await Promise.all(Array.from({ length: workers }, worker));
  console.log(Number(process.hrtime.bigint() - t0) / 1e9);
}

main().catch((e) => { console.error(e); process.exit(1); });
