// Finds org.example.Greeter:1.0.0 in ZooKeeper and calls it with the stock dubbo2.js client
// (its own ZooKeeper registry, node-zookeeper-client).
// usage: node js_zk_client.js ZK_HOST:PORT NAME; prints `ok greet <answer>` or `FAIL ...`.
const { Dubbo, java, setting } = require('dubbo2.js');
const [register, name] = process.argv.slice(2);
const dubbo = Dubbo.from({
  application: { name: 'node-zk-consumer' },
  register,
  dubboVersion: '2.0.2',
  dubboInvokeTimeout: 5,
  dubboSetting: setting.match('org.example.Greeter', { version: '1.0.0' }),
});
const greeter = dubbo.proxyService({
  dubboInterface: 'org.example.Greeter',
  methods: { greet(n) { return [java.String(n)]; } },
});
setTimeout(() => { console.log('FAIL no answer within 30 s'); process.exit(1); }, 30000);
dubbo.ready().then(async () => {
  const { res, err } = await greeter.greet(name);
  if (err) { console.log('FAIL ' + (err.stack || err)); process.exit(1); }
  console.log('ok greet ' + res);
  process.exit(0);
}).catch((e) => { console.log('FAIL ' + (e && e.stack || e)); process.exit(1); });
