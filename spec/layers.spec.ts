import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import * as ts from 'typescript';

/**
 * Imports go one way: a layer imports only its own layer and the ones below it.
 *
 *   0  src/*.ts (errors.ts, limits.ts): import nothing of ours but each other
 *   1  src/protocol/   pure: no sockets, timers or RxJS
 *   2  src/rx/         RxJS over the protocol
 *   3  src/node/       sockets, the Node
 *   4  src/nats/       the NATS transport (the `ipc-link-core/nats` entry point)
 *   5  src/index.ts, src/internal.ts   the barrels (nothing below imports them)
 *
 * A new folder under src must be placed here first (an unknown folder fails).
 */
const LAYERS: Record<string, number> = { '.': 0, protocol: 1, rx: 2, node: 3, nats: 4 };
const BARRELS = new Set(['index.ts', 'internal.ts']);
const SRC = join(__dirname, '..', 'src');

/** The layer of a file, given its path relative to src with '/' separators; undefined for an unknown folder. */
function layerOf(file: string): number | undefined {
  if (BARRELS.has(file)) return 5;
  const dir = posix.dirname(file);
  return LAYERS[dir.split('/')[0]!];
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative import (static, dynamic, `import type`, `export … from`, `import('…')` types) of one file. */
function relativeImports(text: string): string[] {
  return ts
    .preProcessFile(text, true, true)
    .importedFiles.map((imported) => imported.fileName)
    .filter((name) => name.startsWith('.'));
}

/** The upward edges of `file` (relative to src), as "file → import (layer a → layer b)" lines. */
function upwardEdges(file: string, text: string): string[] {
  const from = layerOf(file);
  if (from === undefined) return [`${file}: folder not in the layer list of spec/layers.spec.ts`];
  return relativeImports(text).flatMap((specifier) => {
    const target = posix.normalize(posix.join(posix.dirname(file), specifier));
    if (target.startsWith('..')) return [`${file} → '${specifier}' (outside src)`];
    // A folder ('..', '../rx') means its index.ts.
    const targetFile = target === '.' || target in LAYERS ? posix.join(target, 'index.ts') : target.replace(/(\.ts)?$/, '.ts');
    const to = layerOf(targetFile);
    if (to === undefined) return [`${file} → '${specifier}' (unknown layer)`];
    return to > from ? [`${file} → '${specifier}' (layer ${from} → ${to})`] : [];
  });
}

describe('layers of src', () => {
  const files = sourceFiles(SRC).map((path) => relative(SRC, path).split(sep).join('/'));

  it('finds the sources (so the check below cannot pass vacuously)', () => {
    expect(files).toEqual(expect.arrayContaining(['errors.ts', 'index.ts', 'protocol/FrameDecoder.ts', 'rx/request.ts', 'node/Node.ts']));
  });

  it('never imports upwards: protocol ← rx ← node ← index (errors/limits at the bottom)', () => {
    const offending = files.flatMap((file) => upwardEdges(file, readFileSync(join(SRC, file), 'utf8')));
    expect(offending).toEqual([]);
  });

  it('keeps src/protocol pure: no RxJS, sockets or timers packages', () => {
    const impure = /^(rxjs|node:(net|tls|dgram|stream|timers|events|child_process))(\/|$)/;
    const offending = files
      .filter((file) => file.startsWith('protocol/'))
      .flatMap((file) =>
        ts
          .preProcessFile(readFileSync(join(SRC, file), 'utf8'), true, true)
          .importedFiles.filter(({ fileName }) => impure.test(fileName))
          .map(({ fileName }) => `${file} → '${fileName}'`),
      );
    expect(offending).toEqual([]);
  });

  it('reports an upward edge (the check itself works)', () => {
    expect(upwardEdges('rx/request.ts', "import { MAX_TIMER_DELAY } from '../node/duration';")).toEqual([
      "rx/request.ts → '../node/duration' (layer 2 → 3)",
    ]);
    expect(upwardEdges('protocol/x.ts', "type S = import('../rx/fromSocket').X;")).toHaveLength(1);
    expect(upwardEdges('errors.ts', "export * from './protocol/constants';")).toHaveLength(1);
    expect(upwardEdges('node/Node.ts', "import { x } from '../index';")).toHaveLength(1);
    expect(upwardEdges('node/Node.ts', "import { x } from '..';")).toHaveLength(1);
    expect(upwardEdges('node/Node.ts', "import { x } from '../protocol/constants';\nimport { y } from './Link';")).toEqual([]);
  });
});
