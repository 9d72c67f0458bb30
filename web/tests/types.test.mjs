// The modules type-check as JavaScript (checkJs, `tsconfig.json`), and the
// hand-written declarations agree with them: declarations generated from
// the modules' JSDoc must fit every export the .d.ts files promise
// (`types/conforms.ts`), and a page that uses every part of the client
// type-checks against the .d.ts files and has its marked misuses refused
// (`types/usage.ts`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
const modules = fileURLToPath(new URL('../tsconfig.json', import.meta.url));
const generated = fileURLToPath(new URL('./types/generated/', import.meta.url));
const types = fileURLToPath(new URL('./types/tsconfig.json', import.meta.url));

/** Runs tsc with `args` and fails with its output unless it succeeds. */
function typescript(...args) {
  const run = spawnSync(process.execPath, [tsc, ...args], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stdout + run.stderr);
}

test('the modules type-check as JavaScript (checkJs, no emit)', () => {
  typescript('-p', modules);
});

test('the .d.ts files agree with the modules and accept the usage file, refusing its marked mistakes', () => {
  rmSync(generated, { recursive: true, force: true });
  typescript('-p', modules, '--noEmit', 'false', '--declaration', '--emitDeclarationOnly', '--outDir', generated);
  typescript('-p', types);
});
