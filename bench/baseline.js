'use strict';
// The benchmarks' baseline: a bare restify route answering the same JSON as /health, with no
// database, no logging and no middleware, run under PM2 with as many workers as the service.
// The service's figures are read as a fraction of this one, measured in the same run.
const restify = require('restify');

const server = restify.createServer({ name: '' });
const body = { status: 'healthy', timestamp: '', database: 'connected', version: '0.0.0' };
server.get('/health', (req, res, next) => {
  body.timestamp = new Date().toISOString();
  res.send(200, body);
  next();
});
server.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1', () => {
  if (process.send) process.send('ready');
});
process.on('SIGINT', () => server.close(() => process.exit(0)));
