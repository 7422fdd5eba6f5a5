# MAINTENANCE storage_dir max_age_sec keep_hint_slots
# Under an exclusive non-blocking flock on <storage_dir>/maintenance.lock (a
# concurrent run skips instead of waiting): keeps the newest slot, and the
# newest slot of each of the keep_hint_slots most recent unique first hints;
# renames slots older than max_age_sec to <slot>.bak.rm<ts>; then removes them
# and .bak. dirs older than 60 s in a detached background process (setsid),
# logging to <storage_dir>/maintenance.log. The lock is held until it is done.
use strict;
use POSIX ();
*STDOUT->autoflush(1);
*STDERR->autoflush(1);
my $storage_dir = $ARGV[0];
my $storage_max_age_sec = $ARGV[1];
my $storage_keep_hint_slots = $ARGV[2];
defined($storage_dir) && $storage_dir ne "" or die("storage_dir argument required\n");
defined($storage_max_age_sec) && $storage_max_age_sec =~ /^\d+$/ or die("storage_max_age_sec argument required\n");
defined($storage_keep_hint_slots) && $storage_keep_hint_slots =~ /^\d+$/ or die("storage_keep_hint_slots argument required\n");
length($storage_dir) >= 3 or die("storage_dir is suspiciously short\n");
my $bak_max_age_sec = 60;
my $lock_file = "$storage_dir/maintenance.lock";
# The lock file is never unlinked: unlinking a lock file lets two processes
# hold "the" lock on two different inodes.
open(my $lock, ">>", $lock_file) or die("open $lock_file: $!\n");
if (!flock($lock, 2 | 4)) { # LOCK_EX | LOCK_NB
    print("another maintenance process is already running, so skipping\n");
    exit(0);
}
my @slot_infos = slot_infos($storage_dir);
my $slot_dir_newest = (map { $_->{dir} } grep { !$_->{is_tmp_or_bak} } @slot_infos)[0];
my %slot_dir_newest_per_hint =
    map { $_->{meta_hints}[0], $_->{dir} }
    grep { !$_->{is_tmp_or_bak} && defined($_->{meta_hints}[0]) }
    reverse(@slot_infos);
my @rm_dirs = ();
my $kept_per_hint_slots = 0;
my $now = now_sec();
foreach my $info (@slot_infos) {
    my $dir = $info->{dir};
    my $age_sec = $info->{age_sec};
    my $hint = $info->{meta_hints}[0];
    my $suffix = (defined($hint) ? "hint=$hint, " : "") . "age=${age_sec}s";
    if (defined($slot_dir_newest) && $dir eq $slot_dir_newest) {
        print("keeping $dir, the newest slot overall ($suffix)\n");
        next;
    }
    if (
        defined($hint) &&
        defined($slot_dir_newest_per_hint{$hint}) &&
        $dir eq $slot_dir_newest_per_hint{$hint} &&
        $kept_per_hint_slots < $storage_keep_hint_slots
    ) {
        print("keeping $dir, the newest slot with this hint ($suffix)\n");
        $kept_per_hint_slots++;
        next;
    }
    if ($info->{is_bak}) {
        if ($age_sec > $bak_max_age_sec) {
            print("will remove bak $dir in background ($suffix)\n");
            push(@rm_dirs, $dir);
        }
        next;
    }
    if ($age_sec > $storage_max_age_sec) {
        my $dir_bak = $dir . ".bak.rm" . $now;
        my $dir_bak_name = ($dir_bak =~ m{([^/]+)$})[0];
        print("will rename $dir to $dir_bak_name and remove in background ($suffix)\n");
        rename($dir, $dir_bak) or die("rename $dir to $dir_bak: $!\n");
        push(@rm_dirs, $dir_bak);
        next;
    }
    print("keeping $dir, new enough ($suffix)\n");
}
exit(0) if !@rm_dirs;

my $log_file = "$storage_dir/maintenance.log";
truncate($log_file, 0) if -s $log_file && -s $log_file > 1024 * 1024;
open(STDIN, "<", "/dev/null") or die("open STDIN: $!\n");
open(STDOUT, ">>", $log_file) or die("open $log_file: $!\n");
open(STDERR, ">&", \*STDOUT) or die("dup STDERR: $!\n");
*STDOUT->autoflush(1);
*STDERR->autoflush(1);
defined(my $pid = fork()) or die("fork: $!\n");
$pid == 0 or POSIX::_exit(0);
POSIX::setsid() != -1 or die("setsid: $!\n");
foreach my $dir (@rm_dirs) {
    system("nice", "rm", "-rf", $dir) == 0 or print("rm -rf $dir failed\n");
    print(scalar(localtime()) . " removed $dir\n");
}
close($lock);
