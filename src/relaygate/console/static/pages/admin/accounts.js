// The admin pages about people and money (users, packages and plans, redemption codes,
// content policy, all logs, settings, the audit log): path -> { page, title }.
export const PAGES = {};
