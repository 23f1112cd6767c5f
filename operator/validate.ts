// `xattn validate <manifest>`: the same schema and CEL checks the API server applies.
import type { XAttnJob } from '../crds/types.js';
import { readXAttnJob } from '../crds/validate.js';

/** Returns the job with defaults filled in, or throws ManifestError listing every problem. */
export function validateManifest(path: string): XAttnJob {
  return readXAttnJob(path);
}
