'use strict'
// Preloaded with `node --require` by tests/infra/servers.py when a test needs to move a server's
// clock (iterator expiry, record age). Date.now(), `new Date()` and performance.now() return the
// real time plus the offset in milliseconds written in the file named by FAKE_CLOCK_FILE
// (re-read at most every 10 ms).
const fs = require('fs')

const file = process.env.FAKE_CLOCK_FILE
if (file) {
  const RealDate = Date
  const realNow = RealDate.now
  let offset = 0
  let readAt = 0
  const fakeNow = function fakeNow() {
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
  class FakeDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(fakeNow())
      else super(...args)
    }

    static now() {
      return fakeNow()
    }
  }
  global.Date = FakeDate
  // cats-effect (kinesis-local) reads the wall clock as performance.timeOrigin + now()
  const perf = globalThis.performance
  if (perf && typeof perf.now === 'function') {
    const realPerfNow = perf.now.bind(perf)
    perf.now = function fakePerfNow() {
      fakeNow()
      return realPerfNow() + offset
    }
  }
}
