# Shared by every script below (appended to each of them).
# Returns all slot directories of the storage (including .tmp./.bak. ones)
# with their ctime-based ages and meta, the newest first. CI_STORAGE_NOW (unix
# seconds) replaces the current time for age computations (tests only).
sub now_sec {
    my $now = $ENV{CI_STORAGE_NOW};
    return defined($now) && $now =~ /^\d+$/ ? $now : time();
}
sub slot_infos {
    my ($storage_dir) = @_;
    my $now = now_sec();
    opendir(my $dh, $storage_dir) or die("opendir $storage_dir: $!\n");
    my @names = grep { !/^\./ } readdir($dh);
    closedir($dh);
    return
        sort {
            $a->{age_sec} <=> $b->{age_sec}
            or
            $b->{slot_id} cmp $a->{slot_id}
        }
        map {
            my $slot_id = $_;
            my $dir = "$storage_dir/$slot_id";
            my $inode_ctime = -d $dir ? (stat($dir))[10] : undef;
            if ($inode_ctime) {
                my $meta = "";
                if (open(my $fh, "<", "$dir/.ci-storage.meta")) {
                    local $/ = undef;
                    $meta = <$fh>;
                    $meta = "" if !defined($meta);
                    close($fh);
                }
                my $age_sec = $now - $inode_ctime;
                $age_sec = 0 if $age_sec < 0;
                {
                    slot_id => $slot_id,
                    inode_ctime => $inode_ctime,
                    age_sec => $age_sec,
                    dir => $dir,
                    meta => $meta,
                    meta_hints => $meta =~ /^hints=(.*)/m ? [grep(/./s, split(/\s+/s, $1))] : [],
                    is_tmp_or_bak => $slot_id =~ /\./ ? 1 : 0,
                    is_bak => $slot_id =~ /\.bak\.\w*\d+$/s ? 1 : 0,
                };
            } else {
                ();
            }
        }
        @names;
}
