// The OpenID provider the single sign-on tests sign in at: the certified `oidc-provider` package, with its
// own login and consent pages (its development interactions: any password, but only the accounts below
// exist), the accounts, client and port given as JSON in the first argument by the test
// (tests/e2e/test_dashboard_oidc.py). Prints "listening <issuer>" once it serves.
import Provider from 'oidc-provider';

const settings = JSON.parse(process.argv[2]);
const accounts = new Map(settings.accounts.map((account) => [account.sub, account]));

const provider = new Provider(settings.issuer, {
  clients: settings.clients,
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  cookies: { keys: ['registry-test-cookie-key'] },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  ttl: { AuthorizationCode: 60, IdToken: 600, AccessToken: 600, Session: 3600, Interaction: 600, Grant: 3600 },
  async findAccount(ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, email: account.email, email_verified: true, name: account.name, groups: account.groups };
      },
    };
  },
});

const server = provider.listen(settings.port, '127.0.0.1', () => {
  console.log(`listening ${settings.issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
