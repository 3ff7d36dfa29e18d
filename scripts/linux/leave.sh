#!/usr/bin/env bash
# adjoin: delete a terminated instance's computer object, run on the AD tools host.
#
# Parameters arrive as ADJOIN_<NAME>_B64='<base64>' assignments above this script and
# are decoded as data. Kerberos and LDAP as the join user, and what "ours" means, come
# from tools.sh, which the service sends ahead of this script (after common.sh).
#
# Only the instance's own object is deleted: the computer named COMPUTER_NAME whose
# description is exactly OWNER_STAMP ("adjoin <account> <region> <instance-id>", written
# at the join or the staging) and, when OU_PATH is set, which is inside OU_PATH. A
# same-named object that is not ours is left in place and reported (exit 15). The object
# is deleted with its child objects (e.g. BitLocker recovery information): a plain LDAP
# delete first, then, for an object with children, the tree-delete control (on Windows
# AD the join user then needs the "Delete subtree" right on computer objects).
#
# The instance's address record (COMPUTER_NAME.DOMAIN, registered by sssd at the join)
# is removed too, with nsupdate as the join user (GSS-TSIG): a new instance may get the
# address. That is best effort: it needs nsupdate here and the right to delete the
# record; a failure is reported in the output, not in the exit code.
#
# Exit codes: 0 deleted (or already absent), 10 bad parameters, 11 adcli, kinit or
# ldap-utils missing, 12 password unreadable, 13 domain controller unreachable or the
# join user cannot authenticate, 14 delete refused, 15 not ours: a computer of that name
# exists but lacks the owner stamp or is outside the OU (left in place).

find_computer
if [ -z "$DN" ]; then
  log "computer $COMPUTER_NAME of $INSTANCE_ID is not in $DOMAIN: nothing to delete"
  remove_dns_record
  exit 0
fi
why=$(not_ours_because)
if [ -n "$why" ]; then
  report_not_ours "$why"
  fail 15 "not ours: computer $COMPUTER_NAME was not deleted"
fi

rc=0
delete_computer || rc=$?
case $rc in
  0) log "deleted computer $COMPUTER_NAME ($DN) of $INSTANCE_ID from $DOMAIN" ;;
  32) log "computer $COMPUTER_NAME of $INSTANCE_ID is not in $DOMAIN: nothing to delete" ;;
  *) cat "$WORK/err" >&2; fail 14 "LDAP delete of $DN refused (ldapdelete exit $rc)" ;;
esac
remove_dns_record
