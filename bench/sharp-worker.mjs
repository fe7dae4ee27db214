// The seed's Node.js Lambda, reduced to its image work: for one source image, sharp makes a 300x300 and
// an 800x800 `fit: cover` JPEG with `withMetadata()`, exactly the seed's calls. Run by ferrotype-bench
// (one process per image and round, so its peak RSS is this image's); prints one JSON line.
//
//   node sharp-worker.mjs --image PATH --runs N --warmup N --concurrency N|default --out DIR [--only NAME]
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';

const VARIANTS = [
  { name: 'thumbnail', width: 300, height: 300 },
  { name: 'coverphoto', width: 800, height: 800 },
];

function parseArgs(argv) {
  const args = { runs: 5, warmup: 1, concurrency: 'default', out: null, image: null, only: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`missing value for ${flag}`);
    switch (flag) {
      case '--image': args.image = value; break;
      case '--runs': args.runs = Number(value); break;
      case '--warmup': args.warmup = Number(value); break;
      case '--concurrency': args.concurrency = value; break;
      case '--out': args.out = value; break;
      case '--only': args.only = value; break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  if (!args.image) throw new Error('--image is required');
  if (!(args.runs >= 1)) throw new Error('--runs must be at least 1');
  return args;
}

// The seed's call, verbatim apart from the sizes.
function seedVariant(source, { width, height }) {
  return sharp(source).resize(width, height, { fit: 'cover' }).withMetadata().jpeg().toBuffer({ resolveWithObject: true });
}

function peakRssKiB() {
  // VmHWM: the high-water mark of the resident set, what a Lambda's memory limit is checked against.
  const status = readFileSync('/proc/self/status', 'utf8');
  const match = status.match(/^VmHWM:\s+(\d+)\s+kB/m);
  return match ? Number(match[1]) : Math.round(process.resourceUsage().maxRSS);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.concurrency !== 'default') sharp.concurrency(Number(args.concurrency));
  // Every upload is a new image, so libvips' operation cache can never hit in the seed's Lambda;
  // with it on, the repeated runs here could be served from it and flatter sharp.
  sharp.cache(false);
  const source = readFileSync(args.image);
  const variants = VARIANTS.filter((v) => args.only === null || v.name === args.only);
  if (variants.length === 0) throw new Error(`no variant named ${args.only}`);

  const wallMs = [];
  const cpuMs = [];
  let outputs = [];
  for (let run = 0; run < args.warmup + args.runs; run++) {
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    const rendered = [];
    for (const variant of variants) rendered.push(await seedVariant(source, variant));
    const elapsed = performance.now() - start;
    const cpu = process.cpuUsage(cpuStart);
    if (run >= args.warmup) {
      wallMs.push(elapsed);
      cpuMs.push((cpu.user + cpu.system) / 1000);
    }
    outputs = rendered;
  }

  const written = outputs.map(({ data, info }, i) => {
    let path = null;
    if (args.out) {
      mkdirSync(args.out, { recursive: true });
      path = join(args.out, `sharp-${variants[i].name}.jpg`);
      writeFileSync(path, data);
    }
    return { name: variants[i].name, width: info.width, height: info.height, bytes: data.length, path };
  });
  const result = {
    side: 'sharp',
    image: basename(args.image),
    wallMs,
    cpuMs,
    variants: written,
    peakRssKiB: peakRssKiB(),
    threads: sharp.concurrency(),
    version: sharp.versions.sharp,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`);
  process.exit(1);
});
