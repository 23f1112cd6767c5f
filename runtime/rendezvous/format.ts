// Wording shared by the rendezvous and transport error messages.

/** 120000 -> "120 s", 1500 -> "1.5 s". */
export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** [2] -> "rank 2", [2, 3] -> "ranks 2, 3". */
export function rankList(ranks: number[]): string {
  return `${ranks.length === 1 ? 'rank' : 'ranks'} ${ranks.join(', ')}`;
}
