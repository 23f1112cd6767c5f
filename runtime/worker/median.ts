/** The middle value of xs (the upper one of an even count); NaN for none. */
export const median = (xs: number[]): number => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : NaN);
