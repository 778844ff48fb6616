#!/usr/bin/env node
// The `outrigger` executable: a thin shim over the compiled CLI (npm ci builds dist/).
import '../dist/src/cli/main.js';
