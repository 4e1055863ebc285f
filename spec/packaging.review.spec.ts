import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ts from 'typescript';

/**
 * The package as a consumer's TypeScript finds it: a folder whose node_modules/ipc-link-core is this checkout (a
 * symlink, as `npm link` makes), resolved with each moduleResolution a consumer may have. Checked on the build.
 */
const ROOT = realpathSync(join(__dirname, '..'));

describe('packaging (consumer view)', () => {
  let consumer: string;
  beforeAll(() => {
    consumer = mkdtempSync(join(tmpdir(), 'ipc-consumer-'));
    mkdirSync(join(consumer, 'node_modules'));
    symlinkSync(ROOT, join(consumer, 'node_modules', 'ipc-link-core'), 'dir');
    writeFileSync(join(consumer, 'index.ts'), '');
  });
  afterAll(() => rmSync(consumer, { recursive: true, force: true }));

  // node10 is what `"module": "commonjs"` without a moduleResolution gives: it reads no "exports" map.
  it.each([
    ['node10', { module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10 }],
    ['node16', { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 }],
    ['nodenext', { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext }],
    ['bundler', { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler }],
  ] as const)('resolves the typings of both entries with moduleResolution %s', (_, options) => {
    const resolve = (name: string) =>
      ts.resolveModuleName(name, join(consumer, 'index.ts'), options, ts.sys).resolvedModule?.resolvedFileName;
    expect({ core: resolve('ipc-link-core'), nats: resolve('ipc-link-core/nats') }).toEqual({
      core: join(ROOT, 'dist', 'index.d.ts'),
      nats: join(ROOT, 'dist', 'nats', 'index.d.ts'),
    });
  });
});
