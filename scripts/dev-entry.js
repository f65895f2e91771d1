'use strict';
// Development entry of a PM2 app: runs the TypeScript file named by its argument through tsx,
// so a saved source file is live at the next (watch) restart. A .js entry, because PM2 7 on
// Node 20 refuses a .ts script outright and asks for ts-node.
require('tsx/cjs');
require(require('node:path').resolve(__dirname, '..', process.argv[2]));
