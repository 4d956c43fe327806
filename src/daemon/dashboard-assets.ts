// The dashboard's files, read once when the control server starts: the page, its script and style
// (src/dashboard/), and the chart library (uPlot, an npm dependency, served from node_modules).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export interface Asset {
  body: Buffer;
  contentType: string;
  cacheControl: string;
}

const require = createRequire(import.meta.url);
const PAGE_DIR = new URL('../dashboard/', import.meta.url);

export function dashboardAssets(): Map<string, Asset> {
  const page = (name: string, contentType: string): Asset => ({ body: readFileSync(new URL(name, PAGE_DIR)), contentType, cacheControl: 'no-cache' });
  // The library changes only with the package: let the browser keep it.
  const vendor = (path: string, contentType: string): Asset => ({ body: readFileSync(require.resolve(path)), contentType, cacheControl: 'max-age=3600' });
  return new Map([
    ['/', page('index.html', 'text/html; charset=utf-8')],
    ['/dashboard.js', page('dashboard.js', 'text/javascript; charset=utf-8')],
    ['/dashboard.css', page('dashboard.css', 'text/css; charset=utf-8')],
    ['/favicon.svg', page('favicon.svg', 'image/svg+xml')],
    ['/vendor/uPlot.iife.min.js', vendor('uplot/dist/uPlot.iife.min.js', 'text/javascript; charset=utf-8')],
    ['/vendor/uPlot.min.css', vendor('uplot/dist/uPlot.min.css', 'text/css; charset=utf-8')],
  ]);
}
