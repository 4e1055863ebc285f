import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import * as ts from 'typescript';

/**
 * What loading the package costs (issue 13, item 5): `require('rxjs')` loads every operator RxJS has (~100 ms on a
 * slow machine); the package loads only the RxJS modules it uses, through `rxjs/internal/*`, which are the very
 * files `rxjs`'s index re-exports — so an Observable of ours is an Observable of the user's `require('rxjs')`.
 * Checked on the build (`npm test` builds first), in fresh processes.
 */
const ROOT = join(__dirname, '..');
const DIST = join(ROOT, 'dist', 'index.js');
const SRC = join(ROOT, 'src');

/**
 * Runs `code` as a script in a fresh Node process (cwd: the package) and parses the JSON it prints. A script
 * file, not `node -e`: `-e` loads `node:crypto` itself.
 */
function fresh(code: string, nodeArgs: string[] = []): unknown {
  const dir = mkdtempSync(join(tmpdir(), 'ipc-loading-'));
  try {
    writeFileSync(join(dir, 'script.js'), code);
    return JSON.parse(execFileSync(process.execPath, [...nodeArgs, join(dir, 'script.js')], { cwd: ROOT, encoding: 'utf8' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('loading the package', () => {
  it("never loads RxJS's index (every operator): only the modules it uses", () => {
    const loaded = fresh(`require(${JSON.stringify(DIST)}); console.log(JSON.stringify(Object.keys(require.cache)))`) as string[];
    const rxjs = loaded.filter((path) => path.includes(`${sep}node_modules${sep}rxjs${sep}`));
    expect(rxjs.length).toBeGreaterThan(0);
    expect(rxjs.filter((path) => !path.includes(join('rxjs', 'dist', 'cjs', 'internal') + sep))).toEqual([]);
    // ~20 of RxJS's ~300 modules (the whole package loads ~330 files): Observable, Subject and what they need.
    expect(rxjs.length).toBeLessThan(40);
  });

  it('reads 2 files of its own, not one per module: the build joins dist/ into dist/ipc-link-core.js (scripts/bundle.js)', () => {
    const ours = (paths: string[]) => paths.filter((path) => !path.includes(`${sep}node_modules${sep}`)).map((path) => relative(ROOT, path).split(sep).join('/'));
    const loaded = fresh(`
      const files = () => Object.keys(require.cache).filter((path) => !path.endsWith('script.js'));
      require(${JSON.stringify(DIST)});
      const core = files();
      require(${JSON.stringify(join(ROOT, 'dist', 'nats', 'index.js'))});
      require(${JSON.stringify(join(ROOT, 'dist', 'internal.js'))});
      console.log(JSON.stringify({ core, all: files() }));
    `) as { core: string[]; all: string[] };
    expect(ours(loaded.core)).toEqual(['dist/index.js', 'dist/ipc-link-core.js']);
    // internal.js is two lines over the bundle; the NATS transport keeps its own files (scripts/bundle.js, APART).
    expect(ours(loaded.all).sort()).toEqual([
      'dist/index.js',
      'dist/internal.js',
      'dist/ipc-link-core.js',
      'dist/nats/NatsLink.js',
      'dist/nats/index.js',
      'dist/nats/natsTransport.js',
    ]);
    expect(readdirSync(join(ROOT, 'dist', 'node')).filter((name) => name.endsWith('.js'))).toEqual([]);
    // …and reaches every other module through the bundle: one copy of each class (errors, limits) for both entries.
    const natsRequires = readdirSync(join(ROOT, 'dist', 'nats'))
      .filter((name) => name.endsWith('.js'))
      .flatMap((name) => [...readFileSync(join(ROOT, 'dist', 'nats', name), 'utf8').matchAll(/\brequire\("(\.[^"]*)"\)(\("[^"]*"\))?/g)].map(([call]) => call));
    expect(natsRequires.filter((call) => !call.startsWith('require("./') && !call.startsWith('require("../ipc-link-core.js")("'))).toEqual([]);
    expect(natsRequires).toContain('require("../ipc-link-core.js")("errors")');
  });

  it("leaves every require of another package a call of Node's require with a literal (a user's bundler follows it)", () => {
    const bundle = readFileSync(join(ROOT, 'dist', 'ipc-link-core.js'), 'utf8');
    const calls = [...bundle.matchAll(/\brequire\(([^)]*)\)/g)].map(([, argument]) => argument);
    expect(calls.filter((argument) => argument.includes('rxjs/internal/Observable')).length).toBeGreaterThan(0);
    // Not one other: the NATS transport, which loads its client (an optional peer) by a name held in a variable,
    // stays out of the bundle — webpack warned about that require for every app, NATS or not.
    expect(calls.filter((argument) => !/^(["'])[^"']+\1$/.test(argument))).toEqual([]);
    // Never a parameter named require, which would hide these calls from a bundler; no relative require is left.
    expect(bundle).not.toMatch(/function\s*\([^)]*\brequire\b[^)]*\)/);
    expect(calls.filter((argument) => /^["']\./.test(argument))).toEqual([]);
  });

  it("gives an ESM import exactly the names that require gives, for both entries (not the bundle's other modules')", () => {
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(${JSON.stringify(join(ROOT, 'index.js'))});
      const names = {};
      for (const entry of ['ipc-link-core', 'ipc-link-core/nats']) {
        const namespace = await import(entry);
        // (__esModule: tsc's marker, which Node's lexer lists for the NATS entry, a file as tsc wrote it.)
        names[entry] = { esm: Object.keys(namespace).filter((name) => name !== 'default' && name !== '__esModule').sort(), cjs: Object.keys(require(entry)).sort() };
      }
      console.log(JSON.stringify(names));`;
    const names = JSON.parse(
      execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' }),
    ) as Record<string, { esm: string[]; cjs: string[] }>;
    expect(names['ipc-link-core'].esm).toEqual(names['ipc-link-core'].cjs);
    expect(names['ipc-link-core'].esm).toContain('Node');
    expect(names['ipc-link-core'].esm).not.toContain('Connection'); // internal: exported by a module, not by the entry
    expect(names['ipc-link-core/nats'].esm).toEqual(['natsTransport']);
  });

  it("keeps the sources' lines in stack traces under --enable-source-maps (the bundle's map joins tsc's)", () => {
    const stack = fresh(
      `const { Node } = require(${JSON.stringify(DIST)});
      try { new Node('a', { heartbeatInterval: -1 }); } catch (error) { console.log(JSON.stringify(error.stack.split('\\n').slice(1, 4))); }`,
      ['--enable-source-maps'],
    ) as string[];
    const validate = readFileSync(join(SRC, 'node', 'validate.ts'), 'utf8').split('\n');
    const node = readFileSync(join(SRC, 'node', 'Node.ts'), 'utf8').split('\n');
    const at = (frame: string) => /\((.*):(\d+):\d+\)$/.exec(frame)!;
    const [, failFile, failLine] = at(stack[0]);
    const [, nodeFile, nodeLine] = at(stack[2]);
    expect(relative(ROOT, failFile)).toBe(join('src', 'node', 'validate.ts'));
    expect(validate[Number(failLine) - 1]).toMatch(/throw new TypeError/);
    expect(relative(ROOT, nodeFile)).toBe(join('src', 'node', 'Node.ts'));
    expect(node[Number(nodeLine) - 1]).toMatch(/options\.heartbeatInterval/);
  });

  it('loads node:crypto, node:tls and node:v8, and the RxJS pieces of streams and stats$, only once used', async () => {
    const loaded = fresh(`
      const natives = () => ['crypto', 'tls', 'v8'].filter((name) => process.moduleLoadList.includes('NativeModule ' + name));
      const rx = (name) => Object.keys(require.cache).some((path) => path.endsWith(name + '.js') && path.includes('rxjs'));
      const before = natives(); // (none on Node 20; whatever the runtime loads by itself is not ours)
      const ours = require(${JSON.stringify(DIST)});
      const atLoad = { natives: natives().filter((name) => !before.includes(name)), innerFrom: rx('innerFrom'), timer: rx('timer'), timeout: rx('timeout') };
      new ours.Serializer().encode(new Date(0));
      const node = new ours.Node('a', { heartbeatInterval: 0 });
      node.stats$.subscribe().unsubscribe();
      node.close();
      console.log(JSON.stringify({ atLoad, used: { v8: natives().includes('v8'), innerFrom: rx('innerFrom'), timer: rx('timer') } }));
    `);
    expect(loaded).toEqual({
      atLoad: { natives: [], innerFrom: false, timer: false, timeout: false },
      used: { v8: true, innerFrom: true, timer: true },
    });
  });

  it("shares RxJS's classes with the user's require('rxjs'), whichever is loaded first", () => {
    for (const order of ['ours first', 'rxjs first']) {
      const requires =
        order === 'ours first'
          ? `const ours = require(${JSON.stringify(DIST)}); const rx = userRequire('rxjs');`
          : `const rx = userRequire('rxjs'); const ours = require(${JSON.stringify(DIST)});`;
      // A user's require('rxjs'), from the package's folder.
      const userRequire = `const userRequire = require('node:module').createRequire(${JSON.stringify(join(ROOT, 'index.js'))});`;
      const checks = fresh(`${userRequire} ${requires}
        const { PassThrough } = require('node:stream');
        const node = new ours.Node('a', { heartbeatInterval: 0 });
        const observables = [node.messages$, node.connections$, node.stats$, node.request$('nobody', 1),
          ours.fromSocket(new PassThrough()), ours.pullEach((async function* () {})(), (x) => [x]),
          rx.of(1).pipe(ours.decodeFrames())];
        console.log(JSON.stringify({
          instanceOf: observables.map((o) => o instanceof rx.Observable),
          isObservable: observables.map((o) => rx.isObservable(o)),
          pipes: typeof node.messages$.pipe(rx.map((m) => m)).subscribe,
        }));
        node.close();`) as { instanceOf: boolean[]; isObservable: boolean[]; pipes: string };
      expect({ order, ...checks }).toEqual({ order, instanceOf: Array(7).fill(true), isObservable: Array(7).fill(true), pipes: 'function' });
    }
  });

  it("imports RxJS values from 'rxjs/internal/…' and only types from 'rxjs' (its index would load everything)", () => {
    const offending = sourceFiles(SRC).flatMap((path) => {
      const file = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true);
      return file.statements.flatMap((statement) => {
        if (!ts.isImportDeclaration(statement) && !ts.isExportDeclaration(statement)) return [];
        const from = statement.moduleSpecifier && ts.isStringLiteral(statement.moduleSpecifier) ? statement.moduleSpecifier.text : '';
        if (!/^rxjs(\/|$)/.test(from) || from.startsWith('rxjs/internal/')) return [];
        const typeOnly = ts.isImportDeclaration(statement)
          ? statement.importClause?.isTypeOnly === true
          : statement.isTypeOnly;
        return typeOnly ? [] : [`${relative(ROOT, path)}: ${statement.getText()}`];
      });
    });
    expect(offending).toEqual([]);
  });
});
