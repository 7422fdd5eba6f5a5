# COMMIT_SLOT storage_dir slot_id_tmp slot_id_dst meta
# Writes meta into the freshly stored tmp slot and moves it into place. An
# existing slot is swapped atomically (renameat2 RENAME_EXCHANGE on Linux), so
# a concurrent load always finds either the old or the new slot; the old one
# becomes <slot_id_dst>.bak.<ts> (maintenance removes it after a minute).
use strict;
use POSIX ();
my $storage_dir = $ARGV[0] or die("storage_dir argument required\n");
my $slot_id_tmp = $ARGV[1] or die("slot_id_tmp argument required\n");
my $slot_id_dst = $ARGV[2] or die("slot_id_dst argument required\n");
my $meta = $ARGV[3];
length($storage_dir) >= 3 or die("storage_dir is suspiciously short\n");
defined($meta) or die("meta argument required\n");
my $slot_dir_tmp = "$storage_dir/$slot_id_tmp";
my $slot_dir_dst = "$storage_dir/$slot_id_dst";
my $slot_dir_bak = "$storage_dir/$slot_id_dst.bak." . time();
my $meta_file = "$slot_dir_tmp/.ci-storage.meta";
-d $slot_dir_tmp or die("$slot_dir_tmp does not exist\n");
if ($meta ne "") {
    open(my $fh, ">", $meta_file) or die("open $meta_file: $!\n");
    print($fh $meta) or die("write $meta_file: $!\n");
    close($fh) or die("close $meta_file: $!\n");
} elsif (-f $meta_file) {
    unlink($meta_file) or die("unlink $meta_file: $!\n");
}
-d $slot_dir_bak and (system("rm", "-rf", $slot_dir_bak) == 0 or die("rm -rf $slot_dir_bak failed\n"));

# Atomically swaps two existing paths; returns false if unsupported here.
sub rename_exchange {
    my ($from, $to) = @_;
    return 0 if $^O ne "linux";
    my %syscall_nr = (x86_64 => 316, aarch64 => 276, i686 => 353, i386 => 353, armv7l => 382, armv6l => 382, riscv64 => 276);
    my $nr = $syscall_nr{(POSIX::uname())[4]};
    return 0 if !defined($nr);
    # AT_FDCWD = -100, RENAME_EXCHANGE = 2.
    return syscall($nr, -100, "$from", -100, "$to", 2) == 0;
}

if (-d $slot_dir_dst) {
    if (rename_exchange($slot_dir_tmp, $slot_dir_dst)) {
        rename($slot_dir_tmp, $slot_dir_bak) or die("rename $slot_dir_tmp $slot_dir_bak: $!\n");
        print STDERR "swapped $slot_dir_tmp with $slot_dir_dst atomically, the old slot is now $slot_dir_bak\n";
    } else {
        rename($slot_dir_dst, $slot_dir_bak) or die("rename $slot_dir_dst $slot_dir_bak: $!\n");
        rename($slot_dir_tmp, $slot_dir_dst) or die("rename $slot_dir_tmp $slot_dir_dst: $!\n");
        print STDERR "renamed $slot_dir_dst to $slot_dir_bak and $slot_dir_tmp to $slot_dir_dst\n";
    }
} else {
    rename($slot_dir_tmp, $slot_dir_dst) or die("rename $slot_dir_tmp $slot_dir_dst: $!\n");
    print STDERR "renamed $slot_dir_tmp to $slot_dir_dst\n";
}
utime(time(), time(), $slot_dir_dst) or die("utime $slot_dir_dst: $!\n");
