import Fastify from 'fastify'
import t from 'tap'
import tenantcast, { type TenantcastOptions } from '../../app.js'
import { ConfigError, trustedProxies } from '../../plugins/config.js'
import { TsChild } from '../child.js'

/** Registers and readies the gateway; resolves to the start-up error, if any. */
async function boot (app: ReturnType<typeof Fastify>, config: TenantcastOptions['config']): Promise<unknown> {
  try {
    await app.register(tenantcast, { config })
    await app.ready()
    return undefined
  } catch (err) {
    return err
  }
}

t.test('with no JWT_SECRET in development a secret is generated', async (t) => {
  const app = Fastify()
  await app.register(tenantcast, { config: { NODE_ENV: 'development', LOG_LEVEL: 'silent' } })
  await app.ready()
  t.teardown(async () => { await app.close() })
  t.equal(app.tenantcast.config.DEV_SECRET, true)
  t.ok((app.tenantcast.config.JWT_SECRET ?? '').length >= 32, 'the generated secret is long')
})

t.test('with NODE_ENV=production and no JWT_SECRET start-up fails and says what to set', async (t) => {
  const app = Fastify()
  const err = await boot(app, { NODE_ENV: 'production' })
  t.type(err, ConfigError)
  t.match((err as Error).message, /JWT_SECRET/)
  await app.close()
})

t.test('a non-numeric PORT fails at start-up with a message that names it', async (t) => {
  const app = Fastify()
  const err = await boot(app, { PORT: 'eighty' as unknown as number })
  t.type(err, ConfigError)
  t.match((err as Error).message, /PORT/)
  await app.close()
})

t.test('the standalone server prints one clear line and exits 1 on a bad configuration', async (t) => {
  const server = new TsChild('server.ts', [], { NODE_ENV: 'production', JWT_SECRET: '', PORT: '3000' })
  t.equal(await server.exited, 1)
  const lines = server.stderr.trim().split('\n').filter((l) => l.startsWith('tenantcast:'))
  t.equal(lines.length, 1, 'exactly one line')
  t.match(lines[0], /JWT_SECRET/)
})

t.test('a TRUST_PROXY entry that is no address, range or proxy-addr name fails at start-up and names the setting', async (t) => {
  for (const value of ['10.0.0.0/33', 'proxy.example.com', '10.0.0.1/8/1', '::1/129']) {
    const app = Fastify()
    const err = await boot(app, { TRUST_PROXY: value })
    t.type(err, ConfigError, value)
    t.match((err as Error).message, /TRUST_PROXY/)
    await app.close()
  }
  const app = Fastify()
  t.equal(await boot(app, { TRUST_PROXY: '127.0.0.1, 10.0.0.0/8, ::1/128, loopback', LOG_LEVEL: 'silent' }), undefined, 'addresses, ranges and names are accepted')
  await app.close()
  t.same(trustedProxies(undefined), false, 'unset trusts no proxy')
})
