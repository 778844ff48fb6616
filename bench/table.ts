// Text tables: the one layout every section of the bench's report uses.

/** Text columns (the first `textColumns`) left-aligned, figures right-aligned, two spaces apart. */
export function columns(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  textColumns: number,
): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i < textColumns ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
