#include "mailmirror/providers.h"

namespace mailmirror {

const char* AuthMechanismName(AuthMechanism mechanism) {
  switch (mechanism) {
    case AuthMechanism::kAuto:
      return "auto";
    case AuthMechanism::kPlain:
      return "plain";
    case AuthMechanism::kLogin:
      return "login";
    case AuthMechanism::kXoauth2:
      return "xoauth2";
    case AuthMechanism::kOauthBearer:
      return "oauthbearer";
  }
  return "?";
}

namespace {

// Microsoft identity platform: "organizations" accepts work and school
// accounts (Office 365), "consumers" personal ones (Outlook.com).
OAuthEndpoints Microsoft(const std::string& tenant) {
  const std::string base = "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/";
  return {base + "devicecode", base + "token",
          "https://outlook.office.com/IMAP.AccessAsUser.All offline_access", ""};
}

std::vector<Provider> MakeProviders() {
  return {
      {"office365", "Microsoft 365 / Exchange Online", "outlook.office365.com", 993,
       AuthMechanism::kXoauth2, Microsoft("organizations"), 35,
       "OAuth 2.0 only: register an app in Entra ID (public client, IMAP.AccessAsUser.All) and "
       "set oauth_client_id, then run `mailmirror auth`; no CONDSTORE/QRESYNC, so every sync "
       "scans flags"},
      {"outlook", "Outlook.com, Hotmail, Live, MSN", "imap-mail.outlook.com", 993,
       AuthMechanism::kXoauth2, Microsoft("consumers"), 35,
       "OAuth 2.0 only: set oauth_client_id of an app registered for personal accounts, then "
       "run `mailmirror auth`"},
      {"gmail",
       "Gmail and Google Workspace",
       "imap.gmail.com",
       993,
       AuthMechanism::kAuto,
       {"https://oauth2.googleapis.com/device/code", "https://oauth2.googleapis.com/token",
        "https://mail.google.com/", ""},
       0,
       "an app password with password_cmd, or oauth_token_cmd (Google's device flow does not "
       "grant the mail scope); labels appear as folders"},
      {"yahoo",
       "Yahoo Mail",
       "imap.mail.yahoo.com",
       993,
       AuthMechanism::kPlain,
       {},
       0,
       "needs an app password (Account security, Generate app password)"},
      {"icloud",
       "iCloud Mail",
       "imap.mail.me.com",
       993,
       AuthMechanism::kPlain,
       {},
       0,
       "needs an app-specific password (appleid.apple.com); user is the address before @"},
      {"aol",
       "AOL Mail",
       "imap.aol.com",
       993,
       AuthMechanism::kPlain,
       {},
       0,
       "needs an app password (Account security, Generate app password)"},
  };
}

}  // namespace

const std::vector<Provider>& Providers() {
  static const std::vector<Provider> providers = MakeProviders();
  return providers;
}

const Provider* FindProvider(const std::string& name) {
  for (const Provider& provider : Providers()) {
    if (name == provider.name) return &provider;
  }
  return nullptr;
}

}  // namespace mailmirror
