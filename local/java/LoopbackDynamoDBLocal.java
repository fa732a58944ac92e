// DynamoDB Local, listening on 127.0.0.1 only (local/dynamodb_local.py; docs/decisions.md 172).
//
// DynamoDBLocal.jar has no option for the address it listens on: its Jetty server takes every
// interface, so anyone on the network could read and write the local cloud's table. This launcher
// builds the server exactly as `java -jar DynamoDBLocal.jar <args>` does (ServerRunner's own
// factory, the same arguments), points its connectors at 127.0.0.1, then starts it. Run as a
// single-file source program: java -cp DynamoDBLocal.jar:DynamoDBLocal_lib/* LoopbackDynamoDBLocal.java <args>
import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

public class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        Connector[] connectors = server.getConnectors();
        if (connectors.length == 0) {
            throw new IllegalStateException("DynamoDB Local has no connector to bind to 127.0.0.1");
        }
        for (Connector connector : connectors) {
            ((ServerConnector) connector).setHost("127.0.0.1");
        }
        proxy.start();
    }
}
