// Calls the Rust provider's org.example.Interop:1.0.0 with the stock dubbo2.js client.
// usage: node js_client.js PORT; prints `ok <call>` per right answer, exits 1 at a wrong one.
const { DirectlyDubbo, java } = require('dubbo2.js');
const dubbo = DirectlyDubbo.from({ dubboAddress: '127.0.0.1:' + process.argv[2], dubboVersion: '2.0.2', dubboInvokeTimeout: 5 });
const svc = dubbo.proxyService({
  dubboInterface: 'org.example.Interop', version: '1.0.0',
  methods: {
    greet(name) { return [java.String(name)]; },
    add(a, b) { return [java.int(a), java.long(b)]; },
    total(xs) { return [java.List(xs.map((x) => java.long(x)))]; },
    describe(m) { return [java.Map(m)]; },
    older(p) { return [java('org.example.Person', { name: java.String(p.name), age: java.int(p.age) })]; },
    check(name) { return [java.String(name)]; },
  },
});

function check(name, got, want) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    console.log(`FAIL ${name}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    process.exit(1);
  }
  console.log('ok ' + name);
}

(async () => {
  // The proxy answers `{ res, err }`.
  const r = async (p) => {
    const v = await p;
    if (v && typeof v === 'object' && ('res' in v || 'err' in v)) { if (v.err) throw v.err; return v.res; }
    return v;
  };
  check('greet', await r(svc.greet('ann')), 'hello ann');
  check('add', Number(await r(svc.add(2, 40))), 42);
  check('total', Number(await r(svc.total([1, 2, 3]))), 6);
  check('describe', await r(svc.describe({ b: 2, a: 1 })), 'a=1,b=2');
  const p = await r(svc.older({ name: 'ann', age: 41 }));
  check('older', [p.name, p.age], ['ann', 42]);
  let err = null;
  try { const v = await svc.check('bob'); err = v && v.err; } catch (e) { err = e; }
  check('check', Boolean(err) && String(err.message || err).includes('no such user: bob'), true);
  process.exit(0);
})().catch((e) => { console.log('FAIL ' + (e && e.stack || e)); process.exit(1); });
