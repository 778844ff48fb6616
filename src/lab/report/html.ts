// STAND-IN (branch labrun): the HTML report is written on branch labreport; this minimal version (the
// JSON in a page) only lets the runner compile until that branch is merged, and is replaced by it.
import type { LabReport } from '../types.js';

export function renderLabHtml(report: LabReport): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return `<!doctype html><html><head><meta charset="utf-8"><title>outrigger lab</title></head><body><pre>${esc(JSON.stringify(report, null, 2))}</pre></body></html>\n`;
}
