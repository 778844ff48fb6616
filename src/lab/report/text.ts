// STAND-IN (branch labrun): the terminal summary is written on branch labreport; this minimal version
// only lets the runner compile until that branch is merged, and is replaced by it.
import type { LabReport } from '../types.js';

export function renderLabText(report: LabReport): string {
  return `${report.findings.map((f) => `- ${f}`).join('\n')}\n`;
}
