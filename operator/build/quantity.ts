// Just enough Kubernetes quantity arithmetic to total a gang's requests for a PodGroup's
// minResources: a quantity is scaled by the worker count and keeps its suffix.

const QUANTITY = /^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$/;

/** Multiplies a quantity ("8Gi", "500m", 2) by a whole factor; throws on a malformed one. */
export function scaleQuantity(q: string | number, factor: number): string {
  const m = QUANTITY.exec(String(q));
  if (!m) throw new Error(`'${q}' is not a Kubernetes quantity`);
  const [, num, suffix] = m;
  const decimals = num!.split('.')[1]?.length ?? 0;
  // Fixed-point keeps "0.1" × 3 = "0.3" rather than 0.30000000000000004.
  const scaled = (Math.round(Number(num) * 10 ** decimals) * factor) / 10 ** decimals;
  return `${Number(scaled.toFixed(decimals))}${suffix}`;
}

/** Scales every entry of a resource list (requests or limits). */
export function scaleResources(list: Record<string, string | number>, factor: number): Record<string, string> {
  return Object.fromEntries(Object.entries(list).map(([k, v]) => [k, scaleQuantity(v, factor)]));
}
