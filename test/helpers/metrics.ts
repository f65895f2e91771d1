// Reading Prometheus text in tests.

/** The value of one sample line, given its exact name and labels (`name{a="b"}`), or undefined. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** How much each series moved from one scrape to the next (a missing series counts as 0). */
export function changes(before: string, after: string): (series: string) => number {
  return (series) => (sample(after, series) ?? 0) - (sample(before, series) ?? 0);
}
