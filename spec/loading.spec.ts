import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
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

/** Runs `code` in a fresh Node process (cwd: the package) and parses the JSON it prints. */
function fresh(code: string): unknown {
  return JSON.parse(execFileSync(process.execPath, ['-e', code], { cwd: ROOT, encoding: 'utf8' }));
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
    // ~60 of RxJS's ~300 modules (the whole package loads ~330 files).
    expect(rxjs.length).toBeLessThan(120);
  });

  it("shares RxJS's classes with the user's require('rxjs'), whichever is loaded first", () => {
    for (const order of ['ours first', 'rxjs first']) {
      const requires =
        order === 'ours first'
          ? `const ours = require(${JSON.stringify(DIST)}); const rx = require('rxjs');`
          : `const rx = require('rxjs'); const ours = require(${JSON.stringify(DIST)});`;
      const checks = fresh(`${requires}
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
