// msgpackr loads its optional native accelerator with require('msgpackr-extract') inside a
// try/catch and uses it only when truthy. Our frames are ~100 bytes, where the pure-JS decoder is
// as fast; the accelerator's per-platform packages are also missing from the registry mirror
// here, which makes `npm ci` reject the lock file. Exporting null keeps msgpackr on pure JS.
module.exports = null;
