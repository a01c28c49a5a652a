// deploy/local/KafkaProbe.java: one real metadata round trip against a Kafka
// broker (Admin.describeCluster), run by up.sh as a Java single-file program:
//   java -cp "$KAFKA_HOME/libs/*" KafkaProbe.java 127.0.0.1:9092
// Prints "cluster=<id> nodes=<n>" and exits 0, or exits 1 after 20 s.
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;

public class KafkaProbe {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        try (Admin admin = Admin.create(p)) {
            DescribeClusterResult r = admin.describeCluster();
            String id = r.clusterId().get(20, TimeUnit.SECONDS);
            int n = r.nodes().get(20, TimeUnit.SECONDS).size();
            System.out.println("cluster=" + id + " nodes=" + n);
        } catch (Exception e) {
            System.err.println("kafka probe failed: " + e);
            System.exit(1);
        }
    }
}
