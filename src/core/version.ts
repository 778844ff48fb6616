// The version of Outrigger this code is: the package's version, read once from package.json (which the
// image ships beside dist/), shown by `outrigger --version`, the control process and every proxy.
import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** The package's version (e.g. `0.1.0`), or `unknown` if package.json cannot be read. */
export function outriggerVersion(): string {
  if (cached !== undefined) return cached;
  try {
    // From dist/src/core/ (compiled) up to the project root.
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    cached = 'unknown';
  }
  return cached;
}

/** What a running part of the mesh says of itself (a proxy's GET /version, the control process's). */
export interface VersionView {
  readonly version: string;
  /** The Node.js runtime it runs on (`process.version`). */
  readonly node: string;
}

export function versionView(): VersionView {
  return { version: outriggerVersion(), node: process.version };
}
