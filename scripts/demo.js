// `npm start`: runs examples/hello.ts and examples/world.ts as two real processes, prints their
// conversation, and exits 0 once "Hello world!" went round (1 on failure or after 30 s).
'use strict';
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const root = path.join(__dirname, '..');
const children = [];

function run(name, port) {
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', path.join('examples', `${name}.ts`)], {
    cwd: root,
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let buffered = '';
  const lines = [];
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      console.log(`[${name}] ${line}`);
      lines.push(line);
      child.emit('line', line);
    }
  });
  return child;
}

function finish(code) {
  for (const child of children) child.kill();
  process.exitCode = code;
  clearTimeout(timer);
}

const timer = setTimeout(() => {
  console.error('demo: no "Hello world!" within 30 s');
  finish(1);
}, 30_000);

// Pick a free port so the demo never collides with something already listening.
const probe = net.createServer().listen(0, '127.0.0.1', () => {
  const { port } = probe.address();
  probe.close(() => {
    const hello = run('hello', port);
    hello.on('line', (line) => {
      if (line.startsWith('Listening')) run('world', port);
      if (line === 'Hello world!') finish(0);
    });
    hello.on('exit', (code) => {
      if (process.exitCode === undefined) {
        console.error(`demo: hello exited early (${code})`);
        finish(1);
      }
    });
  });
});
