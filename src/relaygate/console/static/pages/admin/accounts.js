// The admin pages about people and money (users, packages and plans, redemption codes,
// content policy, all logs, the audit log): path -> { page, title }.
import * as alllogs from "./alllogs.js";
import * as audit from "./audit.js";
import * as codes from "./codes.js";
import * as plans from "./plans.js";
import * as safety from "./safety.js";
import * as users from "./users.js";

export const PAGES = {
  "/admin/users": { page: users, title: "nav.adminUsers" },
  "/admin/plans": { page: plans, title: "nav.adminPlans" },
  "/admin/codes": { page: codes, title: "nav.adminCodes" },
  "/admin/safety": { page: safety, title: "nav.adminSafety" },
  "/admin/logs": { page: alllogs, title: "nav.adminLogs" },
  "/admin/audit": { page: audit, title: "nav.adminAudit" },
};
