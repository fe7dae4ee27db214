// Where sharp's crop strategies put a square cover crop: for each image named, the 300x300 crop with
// `position: attention` and with `position: entropy`, as fractions of the upright image. Used by
// `ferrotype-bench crops` to compare Ferrotype's smart crop with sharp's on the same photos.
//
//   node sharp-crops.mjs IMAGE...   (one JSON line per image)
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import sharp from 'sharp';

const SIDE = 300;

async function window(source, position) {
  const { info } = await sharp(source)
    .rotate()
    .resize(SIDE, SIDE, { fit: 'cover', position })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { left: Math.abs(info.cropOffsetLeft ?? 0), top: Math.abs(info.cropOffsetTop ?? 0) };
}

for (const image of process.argv.slice(2)) {
  const source = readFileSync(image);
  const meta = await sharp(source).metadata();
  const swap = (meta.orientation ?? 1) >= 5;
  const width = swap ? meta.height : meta.width;
  const height = swap ? meta.width : meta.height;
  // The cover resize scales the upright image so its shorter side is SIDE; offsets are in that image.
  const scale = SIDE / Math.min(width, height);
  const resized = { width: Math.round(width * scale), height: Math.round(height * scale) };
  const result = { image: basename(image), width, height };
  for (const position of ['attention', 'entropy']) {
    const { left, top } = await window(source, position);
    result[position] = {
      left: left / resized.width,
      top: top / resized.height,
      width: SIDE / resized.width,
      height: SIDE / resized.height,
    };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
