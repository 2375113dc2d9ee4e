// Builds dist/ when the package is installed from a checkout
// (`npm install ./typescript` links the folder and runs `prepare` in it).
// A checkout has no node_modules yet, so the compiler is installed first,
// from the lockfile; a published tarball already holds dist/ and skips this.
'use strict';
const { execFileSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
if (!existsSync(path.join(root, 'tsconfig.build.json'))) process.exit(0);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
if (!existsSync(path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'))) {
  run(npm, ['ci', '--ignore-scripts', '--no-audit', '--no-fund']);
}
run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json']);
