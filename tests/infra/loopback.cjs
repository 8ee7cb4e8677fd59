'use strict'
// Preloaded with `node --require` by tests/infra/servers.py. kinesalite and kinesis-local always
// listen on every interface and have no option for the address, so this makes each server in the
// process listen on 127.0.0.1 instead of the wildcard address.
const net = require('net')

const LOOPBACK = '127.0.0.1'
const WILDCARDS = new Set([undefined, null, '', '0.0.0.0', '::', '[::]'])
const originalListen = net.Server.prototype.listen

function isPort(value) {
  return typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value))
}

net.Server.prototype.listen = function listenOnLoopback(...args) {
  const first = args[0]
  if (first !== null && typeof first === 'object') {
    const isTcp = first.path === undefined && first.fd === undefined && first.handle === undefined
    if (isTcp && WILDCARDS.has(first.host)) args[0] = { ...first, host: LOOPBACK }
  } else if (isPort(first)) {
    if (typeof args[1] !== 'string') args.splice(1, 0, LOOPBACK)
    else if (WILDCARDS.has(args[1])) args[1] = LOOPBACK
  } else if (first === undefined || typeof first === 'function') {
    args.unshift(0, LOOPBACK)
  }
  return originalListen.apply(this, args)
}
