// The stock Node dubbo:// provider (npm apache-dubbo-service 0.0.1) serving
// org.example.Greeter:1.0.0 greet(String), bound to 127.0.0.1, with a stub registry.
// usage: node node_provider.js SECONDS; prints `port N` once listening, exits after SECONDS.
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, cb) {
  return typeof port === 'number' ? listen.call(this, port, '127.0.0.1', cb) : listen.apply(this, arguments);
};
const { DubboService, dubboSetting } = require('apache-dubbo-service');
const registry = { ready: async () => {}, registerServices: async () => {}, close: () => {} };
const svc = DubboService.from({
  registry,
  dubboSetting: dubboSetting.match('org.example.Greeter', { group: '', version: '1.0.0' }),
  services: { greeter: { dubboInterface: 'org.example.Greeter', methods: { greet(name) { return 'hello ' + name; } } } },
});
svc.ready().then(() => console.log('port', svc.getPort()));
setTimeout(() => process.exit(0), Number(process.argv[2] || 20) * 1000);
