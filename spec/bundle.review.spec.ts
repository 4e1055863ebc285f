import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * scripts/bundle.js on a small made-up dist/ (review): the loader against Node's own require — cycles, a module that
 * throws while it loads, and relative requires written by hand (tsc keeps their quotes), lazily or of a folder.
 */
const SCRIPT = join(__dirname, '..', 'scripts', 'bundle.js');

function bundle(files: Record<string, string>): string {
  const dist = mkdtempSync(join(tmpdir(), 'ipc-bundle-'));
  for (const [name, code] of Object.entries(files)) {
    mkdirSync(dirname(join(dist, name)), { recursive: true });
    writeFileSync(join(dist, name), code);
  }
  execFileSync(process.execPath, [SCRIPT, dist], { encoding: 'utf8' });
  return dist;
}

const run = (dist: string, code: string): unknown =>
  JSON.parse(execFileSync(process.execPath, ['-e', code], { cwd: dist, encoding: 'utf8' }));

const dists: string[] = [];
afterAll(() => dists.forEach((dist) => rmSync(dist, { recursive: true, force: true })));

describe('scripts/bundle.js (made-up modules)', () => {
  it('runs a cycle as Node does (the second module sees the first one partly loaded), and a module that threw loads again', () => {
    const dist = bundle({
      'index.js': '"use strict";\nexports.before = 1;\nconst b = require("./b");\nexports.seenByB = b.seen;\nexports.after = 2;\nexports.retry = () => { try { require("./c"); } catch (e) { return e.message; } };\n',
      'internal.js': '"use strict";\nexports.c = () => require("./c").value;\n',
      'b.js': '"use strict";\nconst a = require("./index");\nexports.seen = Object.keys(a);\n',
      'c.js': '"use strict";\nglobalThis.loads = (globalThis.loads || 0) + 1;\nif (globalThis.loads === 1) throw new Error("first load fails");\nexports.value = globalThis.loads;\n',
    });
    dists.push(dist);
    expect(run(dist, 'const m = require("./index.js"); const first = m.retry(); console.log(JSON.stringify({ seen: m.seenByB, after: m.after, first, second: require("./internal.js").c() }))')).toEqual({
      seen: ['before'],
      after: 2,
      first: 'first load fails',
      second: 2,
    });
  });

  it("(was missed) rewrites a relative require written by hand with single quotes (a lazy one), and one of a folder ('..')", () => {
    const dist = bundle({
      'index.js': '"use strict";\nexports.lazy = () => require(\'./lazy\').value;\nexports.up = () => require("./sub/up").value;\nexports.name = "index";\n',
      'internal.js': '"use strict";\nexports.x = 1;\n',
      'lazy.js': '"use strict";\nexports.value = "lazy";\n',
      'sub/up.js': '"use strict";\nexports.value = require("..").name;\n',
    });
    dists.push(dist);
    const bundled = readFileSync(join(dist, 'ipc-link-core.js'), 'utf8');
    expect(bundled).not.toMatch(/\brequire\((["'])\.[^"']*\1\)/);
    expect(run(dist, 'const m = require("./index.js"); console.log(JSON.stringify([m.lazy(), m.up()]))')).toEqual(['lazy', 'index']);
  });
});
