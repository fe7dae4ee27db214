// The seed's Lambda cold start, as far as it can run here: Node starts, loads the handler module
// (which imports sharp, as the seed's does), then polls the Lambda Runtime API for its first event.
// Not included: the managed Node runtime's own client and the AWS SDK the seed loads (not installed
// here), so the real cold start is longer than what this measures.
import http from 'node:http';
import sharp from 'sharp';

// Touch the binding the way a handler's first call would find it loaded.
sharp.concurrency();
const api = process.env.AWS_LAMBDA_RUNTIME_API;
if (!api) {
  process.stderr.write('AWS_LAMBDA_RUNTIME_API is not set\n');
  process.exit(2);
}
http.get(`http://${api}/2018-06-01/runtime/invocation/next`, (res) => res.resume());
