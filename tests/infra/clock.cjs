'use strict'
// Preloaded with `node --require` by tests/infra/servers.py when a test needs to move a server's
// clock (iterator expiry, record age). Date.now() returns the real time plus the offset in
// milliseconds written in the file named by FAKE_CLOCK_FILE (re-read at most every 10 ms).
const fs = require('fs')

const file = process.env.FAKE_CLOCK_FILE
if (file) {
  const realNow = Date.now
  let offset = 0
  let readAt = 0
  Date.now = function fakeNow() {
    const now = realNow()
    if (now - readAt > 10) {
      readAt = now
      try {
        offset = Number(fs.readFileSync(file, 'utf8').trim()) || 0
      } catch (err) {
        offset = 0
      }
    }
    return now + offset
  }
}
