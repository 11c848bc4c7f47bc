// Provider presets: what each resolves to, and that explicit keys win.
#include "mailmirror/providers.h"

#include <gtest/gtest.h>

#include <string>

#include "mailmirror/config.h"

namespace mailmirror {
namespace {

AccountConfig ParseAccountOk(const std::string& body) {
  Result<Config> config = ParseConfig("[accounts.a]\n" + body, "test.toml");
  EXPECT_TRUE(config.ok()) << (config.ok() ? "" : config.error().message);
  if (!config.ok() || config->accounts.empty()) return AccountConfig{};
  return config->accounts[0];
}

std::string ParseError(const std::string& body) {
  Result<Config> config = ParseConfig("[accounts.a]\n" + body, "test.toml");
  EXPECT_FALSE(config.ok());
  return config.ok() ? "" : config.error().message;
}

struct Expected {
  const char* provider;
  const char* host;
  AuthMechanism auth;
  const char* token_url;  // "" for none
};

TEST(ProvidersTest, EveryPresetResolvesToItsServer) {
  const Expected expected[] = {
      {"office365", "outlook.office365.com", AuthMechanism::kXoauth2,
       "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"},
      {"outlook", "imap-mail.outlook.com", AuthMechanism::kXoauth2,
       "https://login.microsoftonline.com/consumers/oauth2/v2.0/token"},
      {"gmail", "imap.gmail.com", AuthMechanism::kAuto, "https://oauth2.googleapis.com/token"},
      {"yahoo", "imap.mail.yahoo.com", AuthMechanism::kPlain, ""},
      {"icloud", "imap.mail.me.com", AuthMechanism::kPlain, ""},
      {"aol", "imap.aol.com", AuthMechanism::kPlain, ""},
  };
  ASSERT_EQ(Providers().size(), std::size(expected));
  for (const Expected& want : expected) {
    SCOPED_TRACE(want.provider);
    const bool oauth = *want.token_url != '\0';
    // OAuth presets need a token source; the others a password.
    AccountConfig account = ParseAccountOk(
        std::string("provider = \"") + want.provider + "\"\nuser = \"me@example.com\"\n" +
        (oauth ? "oauth_token_cmd = \"print-token\"\n" : "password = \"app password\"\n"));
    EXPECT_EQ(account.provider, want.provider);
    EXPECT_EQ(account.host, want.host);
    EXPECT_EQ(account.port, 993);
    EXPECT_EQ(account.tls, TlsMode::kImplicit);
    EXPECT_EQ(account.auth, want.auth);
    EXPECT_EQ(account.oauth.token_url, want.token_url);
    if (oauth) {
      EXPECT_EQ(account.oauth.device_authorization_url.rfind("https://", 0), 0u);
      EXPECT_FALSE(account.oauth.scope.empty());
    }
    const Provider* provider = FindProvider(want.provider);
    ASSERT_NE(provider, nullptr);
    EXPECT_NE(std::string(provider->notes), "");
  }
  EXPECT_NE(FindProvider("office365")->oauth.scope.find("IMAP.AccessAsUser.All"),
            std::string::npos);
  EXPECT_NE(FindProvider("office365")->oauth.scope.find("offline_access"), std::string::npos);
  EXPECT_EQ(FindProvider("gmail")->oauth.scope, "https://mail.google.com/");
  // Exchange Online refuses larger messages; the others state no limit.
  EXPECT_EQ(FindProvider("office365")->max_upload_mb, 35u);
  EXPECT_EQ(FindProvider("outlook")->max_upload_mb, 35u);
  EXPECT_EQ(FindProvider("gmail")->max_upload_mb, 0u);
  EXPECT_EQ(FindProvider("hotmail"), nullptr);
}

TEST(ProvidersTest, ExplicitKeysOverrideThePreset) {
  AccountConfig account = ParseAccountOk(R"(
user = "me@example.com"
port = 10993
host = "imap.example.net"
auth = "oauthbearer"
oauth_token_cmd = "print-token"
oauth_scope = "mail"
oauth_token_url = "https://login.example.net/token"
provider = "office365"
)");
  // The key order does not matter: the preset goes first.
  EXPECT_EQ(account.host, "imap.example.net");
  EXPECT_EQ(account.port, 10993);
  EXPECT_EQ(account.auth, AuthMechanism::kOauthBearer);
  EXPECT_EQ(account.oauth.scope, "mail");
  EXPECT_EQ(account.oauth.token_url, "https://login.example.net/token");
  EXPECT_EQ(account.oauth.device_authorization_url,
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode");
  EXPECT_EQ(account.oauth_token_cmd, "print-token");
  EXPECT_EQ(account.max_upload_bytes, 35000000u);  // from the preset
  AccountConfig raised = ParseAccountOk(
      "provider = \"office365\"\nuser = \"me\"\noauth_token_cmd = \"t\"\nmax_upload_size = 150\n");
  EXPECT_EQ(raised.max_upload_bytes, 150000000u);
}

TEST(ProvidersTest, OverridingTheTlsModeDropsThePresetPort) {
  AccountConfig account = ParseAccountOk(
      "provider = \"yahoo\"\nuser = \"me\"\npassword = \"pw\"\ntls = \"starttls\"\n");
  EXPECT_EQ(account.tls, TlsMode::kStartTls);
  EXPECT_EQ(account.port, 143);
  EXPECT_EQ(account.host, "imap.mail.yahoo.com");
}

TEST(ProvidersTest, UnknownProviderListsTheKnownOnes) {
  std::string message = ParseError("provider = \"hotmail\"\nuser = \"me\"\npassword = \"pw\"\n");
  EXPECT_NE(message.find("test.toml:2: accounts.a.provider: unknown provider \"hotmail\""),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("\"office365\""), std::string::npos) << message;
  EXPECT_NE(message.find("mailmirror providers"), std::string::npos) << message;
}

TEST(ProvidersTest, OAuthPresetWithAPasswordOnlyExplainsWhatToSet) {
  std::string message =
      ParseError("provider = \"office365\"\nuser = \"me@example.com\"\npassword = \"pw\"\n");
  EXPECT_NE(message.find("provider \"office365\" logs in with an OAuth 2.0 access token"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("oauth_token_cmd"), std::string::npos) << message;
  EXPECT_NE(message.find("mailmirror auth a"), std::string::npos) << message;
  // With a client id the built-in client can get tokens: accepted.
  AccountConfig account = ParseAccountOk(
      "provider = \"office365\"\nuser = \"me@example.com\"\noauth_client_id = \"1234\"\n");
  EXPECT_EQ(account.oauth.client_id, "1234");
  EXPECT_TRUE(HasTokenSource(account));
  EXPECT_FALSE(HasPasswordSource(account));
}

TEST(ProvidersTest, AuthValuesAndTheirCredentials) {
  EXPECT_EQ(ParseAccountOk("host = \"h\"\nuser = \"u\"\npassword = \"p\"\nauth = \"login\"\n").auth,
            AuthMechanism::kLogin);
  EXPECT_EQ(ParseAccountOk("host = \"h\"\nuser = \"u\"\npassword = \"p\"\nauth = \"plain\"\n").auth,
            AuthMechanism::kPlain);
  EXPECT_EQ(ParseAccountOk("host = \"h\"\nuser = \"u\"\noauth_token_cmd = \"t\"\n").auth,
            AuthMechanism::kAuto);
  EXPECT_NE(ParseError("host = \"h\"\nuser = \"u\"\noauth_token_cmd = \"t\"\nauth = \"plain\"\n")
                .find("auth = \"plain\" needs key \"password\" or \"password_cmd\""),
            std::string::npos);
  EXPECT_NE(ParseError("host = \"h\"\nuser = \"u\"\npassword = \"p\"\nauth = \"xoauth2\"\n")
                .find("auth = \"xoauth2\" logs in with an OAuth 2.0 access token"),
            std::string::npos);
  EXPECT_NE(ParseError("host = \"h\"\nuser = \"u\"\npassword = \"p\"\nauth = \"cram-md5\"\n")
                .find("expected \"auto\", \"plain\", \"login\", \"xoauth2\" or \"oauthbearer\""),
            std::string::npos);
  EXPECT_NE(ParseError("host = \"h\"\nuser = \"u\"\n").find("missing key \"password\""),
            std::string::npos);
  EXPECT_NE(ParseError("host = \"h\"\nuser = \"u\"\noauth_token_cmd = \"t\"\n"
                       "oauth_token_url = \"http://login.example.net/token\"\n")
                .find("expected an https:// URL"),
            std::string::npos);
}

TEST(ProvidersTest, GmailKeys) {
  AccountConfig defaults =
      ParseAccountOk("provider = \"gmail\"\nuser = \"me@gmail.com\"\npassword = \"app\"\n");
  EXPECT_TRUE(defaults.gmail_link_labels);
  EXPECT_FALSE(defaults.gmail_all_mail);
  AccountConfig set = ParseAccountOk(
      "provider = \"gmail\"\nuser = \"me@gmail.com\"\npassword = \"app\"\n"
      "gmail_labels = \"copy\"\ngmail_all_mail = true\n");
  EXPECT_FALSE(set.gmail_link_labels);
  EXPECT_TRUE(set.gmail_all_mail);
  EXPECT_NE(ParseError("host = \"h\"\nuser = \"u\"\npassword = \"p\"\ngmail_labels = \"hard\"\n")
                .find("expected \"link\" or \"copy\""),
            std::string::npos);
  EXPECT_NE(ParseError("host = \"h\"\nuser = \"u\"\npassword = \"p\"\ngmail_all_mail = \"yes\"\n")
                .find("expected true or false"),
            std::string::npos);
}

}  // namespace
}  // namespace mailmirror
