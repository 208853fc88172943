// A tiny static file server for the built web app, under a sub-path (as a CDN or a reverse
// proxy would serve it), so the tests catch absolute asset URLs. Loopback only, a free port.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Serves the files of `root` at `http://127.0.0.1:PORT{prefix}`; `{prefix}` itself serves
 * index.html and anything outside the prefix is a 404. `headers` are added to every response
 * (as a CDN's response headers policy adds them). Returns `{ origin, url, requests, close }`;
 * `requests` lists every `{ method, path, status }` served, for diagnostics.
 */
export async function serveStatic(root, { prefix = '/', headers: extra = {} } = {}) {
  if (!prefix.startsWith('/') || !prefix.endsWith('/')) {
    throw new Error(`prefix must start and end with "/": ${prefix}`);
  }
  const base = path.resolve(root);
  const requests = [];
  const server = createServer(async (req, res) => {
    const send = (status, body, headers = {}) => {
      requests.push({ method: req.method, path: req.url, status });
      res.writeHead(status, { 'cache-control': 'no-store', ...extra, ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed');
      const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      if (pathname === prefix.slice(0, -1) && prefix !== '/') {
        return send(301, '', { location: prefix });
      }
      if (!pathname.startsWith(prefix)) return send(404, 'not found');
      let file = path.resolve(base, '.' + path.posix.normalize('/' + pathname.slice(prefix.length)));
      if (file !== base && !file.startsWith(base + path.sep)) return send(404, 'not found');
      if ((await stat(file).catch(() => null))?.isDirectory()) file = path.join(file, 'index.html');
      const body = await readFile(file).catch(() => null);
      if (body === null) return send(404, 'not found');
      const type = TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
      return send(200, body, { 'content-type': type, 'content-length': body.length });
    } catch (err) {
      return send(500, String(err));
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    url: origin + prefix,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
