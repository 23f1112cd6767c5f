// Child process for the thread-count determinism test: prints a hash of GEMM results computed with
// the thread count of XATTN_CPU_THREADS.
import { createHash } from 'node:crypto';
import { Engine } from '../../../runtime/engine/engine.js';
import { bindNn } from '../../../runtime/model/nn.js';
import { randn } from '../../../runtime/worker/random.js';

const engine = Engine.create();
const nn = bindNn(engine);
const h = createHash('sha256');
// A multi-tile shape, and a split-K shape (few output tiles, long K: weight gradients over many tokens).
for (const [m, n, k, transA] of [[300, 700, 129, false], [40, 50, 9000, true]] as const) {
  const a = await engine.upload(randn(m * k, m), [m * k], 'float32');
  const b = await engine.upload(randn(k * n, n), [k * n], 'float32');
  const c = await nn.gemm(a, b, { m, n, k, transA });
  h.update(Buffer.from(((await c.download()) as Float32Array).buffer));
}
process.stdout.write(h.digest('hex'));
await engine.close();
