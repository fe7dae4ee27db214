// The seed's whole job as one process: for every image named, read it, make the seed's 300x300 and
// 800x800 `fit: cover` JPEGs with sharp (the seed's calls, as in sharp-worker.mjs) and write them to
// --out. ferrotype-bench times this process from outside against a whole `ferrotype run` on the same
// images (`pipeline`), so Node's start and sharp's load count as the run's own start-up does.
//
//   node seed-job.mjs --out DIR [--concurrency N|default] IMAGE...
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import sharp from 'sharp';

const VARIANTS = [
  { name: 'thumbnail', width: 300, height: 300 },
  { name: 'coverphoto', width: 800, height: 800 },
];

async function main() {
  const argv = process.argv.slice(2);
  let out = null;
  let concurrency = '1';
  const images = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out = argv[++i];
    else if (argv[i] === '--concurrency') concurrency = argv[++i];
    else images.push(argv[i]);
  }
  if (!out || images.length === 0) throw new Error('usage: seed-job.mjs --out DIR IMAGE...');
  if (concurrency !== 'default') sharp.concurrency(Number(concurrency));
  // Every upload is a new image: libvips' operation cache never hits in the seed's Lambda.
  sharp.cache(false);
  mkdirSync(out, { recursive: true });
  for (const image of images) {
    const source = readFileSync(image);
    for (const { name, width, height } of VARIANTS) {
      const data = await sharp(source).resize(width, height, { fit: 'cover' }).withMetadata().jpeg().toBuffer();
      writeFileSync(join(out, `${basename(image)}-${name}.jpg`), data);
    }
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`);
  process.exit(1);
});
