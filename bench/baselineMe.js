'use strict';
// The baseline of GET /api/me: a bare restify route that does what that route must (verify the
// HS256 bearer token with jose, with the service's secret and issuer, and read the account by
// primary key through a mysql2 pool) and answers the same JSON, with no other checks, no logging
// and no middleware. Run under PM2 with as many workers as the service.
const restify = require('restify');
const mysql = require('mysql2/promise');
const { jwtVerify } = require('jose');

const key = new TextEncoder().encode(process.env.JWT_SECRET);
const pool = mysql.createPool({
  host: process.env.MYSQL_HOST || '127.0.0.1',
  port: Number(process.env.MYSQL_PORT || 3306),
  user: process.env.MYSQL_USER || 'root',
  password: process.env.MYSQL_PASSWORD || '',
  database: process.env.MYSQL_DATABASE,
  connectionLimit: 10,
  timezone: 'Z',
});

const server = restify.createServer({ name: '' });
server.get('/api/me', async (req, res) => {
  const header = req.headers.authorization || '';
  try {
    const { payload } = await jwtVerify(header.slice('Bearer '.length), key, { algorithms: ['HS256'], issuer: 'resilient-api' });
    const [rows] = await pool.execute('SELECT id, username, email, created_at FROM users WHERE id = ?', [Number(payload.sub)]);
    const user = rows[0];
    if (!user) return res.send(401, { error: 'Authentication required' });
    res.send(200, { id: user.id, username: user.username, email: user.email, createdAt: user.created_at.toISOString() });
  } catch {
    res.send(401, { error: 'Authentication required' });
  }
});
server.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1', () => {
  if (process.send) process.send('ready');
});
process.on('SIGINT', () => server.close(() => pool.end().then(() => process.exit(0))));
